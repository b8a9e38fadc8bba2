"""Motion without weights: a background-subtraction detector and the gate that skips the CNN."""

from __future__ import annotations

import cv2
import numpy as np

from edge.detect.types import Detections, Frame


def _small(frame: Frame, width: int, interpolation: int = cv2.INTER_AREA) -> tuple[Frame, float]:
    h, w = frame.shape[:2]
    scale = min(1.0, width / w)
    if scale < 1.0:
        size = (round(w * scale), round(h * scale))
        frame = np.asarray(cv2.resize(frame, size, interpolation=interpolation), np.uint8)
    return frame, scale


class MotionDetector:
    """Boxes around moving blobs from OpenCV's MOG2 background subtractor (no model weights)."""

    def __init__(
        self,
        *,
        min_area: float = 0.002,
        max_area: float = 0.3,
        work_width: int = 320,
        history: int = 500,
        var_threshold: float = 25.0,
        score: float = 0.9,
    ) -> None:
        self.min_area = min_area
        self.max_area = max_area
        self.work_width = work_width
        self.score = score
        self._bg = cv2.createBackgroundSubtractorMOG2(
            history=history, varThreshold=var_threshold, detectShadows=False
        )
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def detect(self, frame: Frame) -> Detections:
        """Bounding boxes of foreground blobs larger than `min_area` of the frame."""
        small, scale = _small(frame, self.work_width)
        mask = self._bg.apply(small)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.dilate(mask, self._kernel, iterations=2)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 1:
            return Detections.empty()
        stats = stats[1:]
        frame_px = small.shape[0] * small.shape[1]
        area = stats[:, cv2.CC_STAT_AREA]
        # blobs over max_area are lighting changes or the model's first frame, not people
        stats = stats[(area >= self.min_area * frame_px) & (area <= self.max_area * frame_px)]
        x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        w, h = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
        xyxy = np.stack((x, y, x + w, y + h), axis=1).astype(np.float32) / scale
        return Detections.from_arrays(xyxy, np.full(len(xyxy), self.score, np.float32))


class MotionGate:
    """Says whether a frame moved against a running-average background (as Frigate does)."""

    def __init__(
        self, *, min_area: float = 0.001, work_width: int = 160, threshold: int = 25
    ) -> None:
        self.min_area = min_area
        self.work_width = work_width
        self.threshold = threshold
        self._avg: np.ndarray | None = None
        self.last_fraction = 0.0

    def has_motion(self, frame: Frame) -> bool:
        """True when more than `min_area` of the frame changed; updates the background."""
        # nearest-neighbour sampling: 20x cheaper than area averaging, and the blur below
        # removes the aliasing it would add
        small, _ = _small(frame, self.work_width, cv2.INTER_NEAREST)
        gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        if self._avg is None or self._avg.shape != gray.shape:
            self._avg = gray.astype(np.float32)
            self.last_fraction = 1.0
            return True
        diff = cv2.absdiff(gray, cv2.convertScaleAbs(self._avg))
        changed = int(np.count_nonzero(diff > self.threshold))
        cv2.accumulateWeighted(gray, self._avg, 0.2)
        self.last_fraction = changed / diff.size
        return self.last_fraction > self.min_area
