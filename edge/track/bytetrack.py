"""A lean ByteTrack: two-round IoU association (high then low scores), batched Kalman filter.

Tracks are held in parallel numpy arrays and compacted when they end, so memory stays flat
however long the device runs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from edge.config import TrackerConfig
from edge.detect.types import Detections
from edge.track import kalman
from edge.track.types import Track, TrackUpdate

Arr = npt.NDArray[np.float64]
Idx = npt.NDArray[np.intp]


def iou_matrix(a: Arr, b: Arr) -> Arr:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9))


def match(iou: Arr, threshold: float) -> tuple[Idx, Idx]:
    """Optimal one-to-one assignment keeping pairs with IoU >= threshold (rows, cols)."""
    if iou.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    rows, cols = linear_sum_assignment(-iou)
    ok = iou[rows, cols] >= threshold
    return rows[ok].astype(np.intp), cols[ok].astype(np.intp)


class ByteTracker:
    """ByteTrack-class tracker with confirmation after `min_hits` and a timed lost buffer."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._next_id = 1
        self._clear()

    def _clear(self) -> None:
        self._mean: Arr = np.zeros((0, 8))
        self._cov: Arr = np.zeros((0, 8, 8))
        self._ids = np.zeros(0, np.int64)
        self._hits = np.zeros(0, np.int64)
        self._last_seen = np.zeros(0)
        self._confirmed = np.zeros(0, bool)
        self._score = np.zeros(0)
        self._cls = np.zeros(0, np.int64)
        self._prev_t = -np.inf

    def __len__(self) -> int:
        """Tracks held (visible, lost and tentative)."""
        return int(self._ids.shape[0])

    def update(self, detections: Detections, t: float) -> TrackUpdate:
        """Advance one frame at time `t` with this frame's detections."""
        cfg = self.config
        was_visible = self._last_seen >= self._prev_t
        if len(self):
            self._mean, self._cov = kalman.predict(self._mean, self._cov)
        boxes = detections.xyxy.astype(np.float64)
        scores = detections.scores.astype(np.float64)
        high = np.nonzero(scores >= cfg.high_threshold)[0]
        low = np.nonzero((scores >= cfg.low_threshold) & (scores < cfg.high_threshold))[0]
        predicted = kalman.xyah_to_xyxy(self._mean)
        # round 1: confident detections against every track, lost ones included
        tr, dt = match(iou_matrix(predicted, boxes[high]), cfg.match_iou)
        matched = np.zeros(len(self), bool)
        matched[tr] = True
        # round 2: weak detections (occluded people) keep visible confirmed tracks going
        rest = np.nonzero(~matched & was_visible & self._confirmed)[0]
        tr2, dt2 = match(iou_matrix(predicted[rest], boxes[low]), max(cfg.match_iou, 0.5))
        rows = np.concatenate((tr, rest[tr2])).astype(np.intp)
        dets = np.concatenate((high[dt], low[dt2])).astype(np.intp)
        matched[rows] = True
        self._apply_matches(rows, dets, boxes, scores, detections, t)
        used = np.zeros(len(scores), bool)
        used[dets] = True
        keep, removed = self._prune(matched, t)
        new = high[~used[high]]
        self._spawn(new, boxes, scores, detections, t)
        seen = np.concatenate((matched[keep], np.ones(len(new), bool)))
        return TrackUpdate(self._visible_tracks(seen), removed)

    def _apply_matches(
        self, rows: Idx, dets: Idx, boxes: Arr, scores: Arr, d: Detections, t: float
    ) -> None:
        if rows.size:
            m, c = kalman.update(
                self._mean[rows], self._cov[rows], kalman.xyxy_to_xyah(boxes[dets])
            )
            self._mean[rows], self._cov[rows] = m, c
            self._hits[rows] += 1
            self._last_seen[rows] = t
            self._score[rows] = scores[dets]
            self._cls[rows] = d.class_ids[dets]
            self._confirmed |= self._hits >= self.config.min_hits
        self._prev_t = t

    def _prune(
        self, matched: npt.NDArray[np.bool_], t: float
    ) -> tuple[npt.NDArray[np.bool_], list[int]]:
        """Drop unmatched tentative tracks and lost tracks past the buffer."""
        expired = self._confirmed & ~matched & (t - self._last_seen > self.config.lost_buffer_s)
        keep = ~((~self._confirmed & ~matched) | expired)
        removed = [int(i) for i in self._ids[expired]]
        if not keep.all():
            self._mean, self._cov = self._mean[keep], self._cov[keep]
            self._ids, self._hits = self._ids[keep], self._hits[keep]
            self._last_seen, self._confirmed = self._last_seen[keep], self._confirmed[keep]
            self._score, self._cls = self._score[keep], self._cls[keep]
        return keep, removed

    def _spawn(self, new: Idx, boxes: Arr, scores: Arr, d: Detections, t: float) -> None:
        n = new.size
        if n == 0:
            return
        mean, cov = kalman.initiate(kalman.xyxy_to_xyah(boxes[new]))
        self._mean = np.concatenate((self._mean, mean))
        self._cov = np.concatenate((self._cov, cov))
        self._ids = np.concatenate((self._ids, np.arange(self._next_id, self._next_id + n)))
        self._next_id += n
        self._hits = np.concatenate((self._hits, np.ones(n, np.int64)))
        self._last_seen = np.concatenate((self._last_seen, np.full(n, t)))
        self._confirmed = np.concatenate((self._confirmed, np.full(n, self.config.min_hits <= 1)))
        self._score = np.concatenate((self._score, scores[new]))
        self._cls = np.concatenate((self._cls, d.class_ids[new]))

    def flush(self) -> list[int]:
        """End every confirmed track (shutdown); returns their ids."""
        ended = [int(i) for i in self._ids[self._confirmed]]
        self._clear()
        return ended

    def _visible_tracks(self, seen: npt.NDArray[np.bool_]) -> list[Track]:
        rows = np.nonzero(seen & self._confirmed)[0]
        xyxy = kalman.xyah_to_xyxy(self._mean[rows]).tolist()
        ids, sc, cl = self._ids[rows].tolist(), self._score[rows].tolist(), self._cls[rows].tolist()
        return [
            Track(i, b[0], b[1], b[2], b[3], s, c)
            for i, b, s, c in zip(ids, xyxy, sc, cl, strict=True)
        ]
