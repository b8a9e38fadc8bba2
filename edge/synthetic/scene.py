"""Synthetic store scenes: rendered figures walking known paths, with exact ground truth.

A walker follows keyframes (t, x, y) of its feet in normalised coordinates, linearly
interpolated; occluders are drawn in front of the walkers and hide the boxes they cover.
Detections can come from the rendered frames (motion detector) or from the ground truth
plus noise; both drive the same pipeline in the tests and in `mallpulse demo`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.analytics.geometry import points_in_polygon
from edge.detect.types import Detections, Frame

Keyframe = tuple[float, float, float]  # t seconds, x, y (feet, normalised)
Rect = tuple[float, float, float, float]  # x1, y1, x2, y2 normalised


@dataclass(frozen=True, slots=True)
class Walker:
    """A person following keyframes of their feet position; visible from first to last key."""

    id: int
    keys: tuple[Keyframe, ...]
    height: float = 0.2  # of the frame height
    colour: tuple[int, int, int] = (40, 60, 200)

    def at(self, t: float) -> tuple[float, float] | None:
        """Feet position at time t, or None outside the walker's time span."""
        ts = [k[0] for k in self.keys]
        if t < ts[0] or t > ts[-1]:
            return None
        x = float(np.interp(t, ts, [k[1] for k in self.keys]))
        y = float(np.interp(t, ts, [k[2] for k in self.keys]))
        return x, y


@dataclass
class Scene:
    """Walkers and occluders on a static background, rendered at a fixed frame rate."""

    walkers: list[Walker]
    width: int = 640
    height: int = 360
    fps: float = 15.0
    duration: float = 0.0
    occluders: list[Rect] = field(default_factory=list)
    seed: int = 7

    def __post_init__(self) -> None:
        if not self.duration:
            self.duration = max(k[0] for w in self.walkers for k in w.keys) + 1.0
        rng = np.random.default_rng(self.seed)
        noise = rng.integers(0, 18, (self.height // 8, self.width // 8, 1), dtype=np.uint8)
        floor = cv2.resize(noise, (self.width, self.height), interpolation=cv2.INTER_NEAREST)
        self._background = np.dstack([floor + 150, floor + 140, floor + 120]).astype(np.uint8)

    @property
    def times(self) -> npt.NDArray[np.float64]:
        """Frame timestamps in seconds."""
        return np.arange(0.0, self.duration, 1.0 / self.fps)

    def _box(self, w: Walker, x: float, y: float) -> tuple[float, float, float, float]:
        h = w.height * self.height
        bw = 0.38 * h
        fx, fy = x * self.width, y * self.height
        return fx - bw / 2, fy - h, fx + bw / 2, fy

    def boxes(self, t: float) -> dict[int, tuple[float, float, float, float]]:
        """Ground-truth pixel boxes of the visible walkers (on screen, not mostly occluded)."""
        out = {}
        for w in self.walkers:
            pos = self.at(w, t)
            if pos is None:
                continue
            x1, y1, x2, y2 = self._box(w, *pos)
            cx1, cy1 = max(x1, 0.0), max(y1, 0.0)
            cx2, cy2 = min(x2, float(self.width)), min(y2, float(self.height))
            area = (x2 - x1) * (y2 - y1)
            if cx2 <= cx1 or cy2 <= cy1 or (cx2 - cx1) * (cy2 - cy1) < 0.5 * area:
                continue
            if self._hidden((x1, y1, x2, y2), area):
                continue
            out[w.id] = (cx1, cy1, cx2, cy2)
        return out

    @staticmethod
    def at(w: Walker, t: float) -> tuple[float, float] | None:
        """Feet position of a walker at time t."""
        return w.at(t)

    def _hidden(self, box: tuple[float, float, float, float], area: float) -> bool:
        for ox1, oy1, ox2, oy2 in self.occluders:
            ix = min(box[2], ox2 * self.width) - max(box[0], ox1 * self.width)
            iy = min(box[3], oy2 * self.height) - max(box[1], oy1 * self.height)
            if ix > 0 and iy > 0 and ix * iy >= 0.5 * area:
                return True
        return False

    def render(self, t: float) -> Frame:
        """The BGR frame at time t: floor, figures (far ones first), occluders in front."""
        img = self._background.copy()
        placed = [(w, p) for w in self.walkers if (p := w.at(t)) is not None]
        for w, (x, y) in sorted(placed, key=lambda wp: wp[1][1]):
            x1, y1, x2, y2 = self._box(w, x, y)
            h = y2 - y1
            cx = int((x1 + x2) / 2)
            cv2.ellipse(
                img,
                (cx, int(y1 + 0.58 * h)),
                (int((x2 - x1) / 2), int(0.36 * h)),
                0,
                0,
                360,
                w.colour,
                -1,
            )
            cv2.circle(img, (cx, int(y1 + 0.12 * h)), int(0.11 * h), (80, 150, 230), -1)
        for ox1, oy1, ox2, oy2 in self.occluders:
            p1 = (int(ox1 * self.width), int(oy1 * self.height))
            p2 = (int(ox2 * self.width), int(oy2 * self.height))
            cv2.rectangle(img, p1, p2, (90, 90, 90), -1)
        return img

    def frames(self) -> Iterator[tuple[Frame, float]]:
        """Rendered frames and their timestamps."""
        for t in self.times:
            yield self.render(float(t)), float(t)

    def write_video(self, path: str | Path) -> Path:
        """Render the whole scene into a video file (MJPG .avi or mp4v .mp4)."""
        target = Path(path)
        codec = "mp4v" if target.suffix.lower() == ".mp4" else "MJPG"
        writer = cv2.VideoWriter(
            str(target), cv2.VideoWriter.fourcc(*codec), self.fps, (self.width, self.height)
        )
        if not writer.isOpened():
            raise OSError(f"cannot write video {target}")
        try:
            for frame, _ in self.frames():
                writer.write(frame)
        finally:
            writer.release()
        return target

    def true_visits(
        self, walker_id: int, polygon: Sequence[Sequence[float]], step: float = 0.001
    ) -> list[tuple[float, float]]:
        """Exact (enter, exit) times of a walker's feet in a polygon, sampled every `step`."""
        w = next(x for x in self.walkers if x.id == walker_id)
        ts = np.arange(w.keys[0][0], w.keys[-1][0] + step, step)
        pts = np.array([w.at(float(min(t, w.keys[-1][0]))) for t in ts], np.float64)
        inside = points_in_polygon(pts, polygon)
        edges = np.diff(inside.astype(np.int8), prepend=0, append=0)
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        return [
            (float(ts[int(a)]), float(ts[min(int(b), len(ts) - 1)]))
            for a, b in zip(starts, ends, strict=True)
        ]


def noisy_detections(
    boxes: dict[int, tuple[float, float, float, float]],
    rng: np.random.Generator,
    *,
    jitter_px: float = 1.5,
    miss_rate: float = 0.0,
    score: float = 0.85,
) -> Detections:
    """Ground-truth boxes with Gaussian corner jitter and randomly missed detections."""
    kept = [b for b in boxes.values() if rng.random() >= miss_rate]
    if not kept:
        return Detections.empty()
    xyxy = np.array(kept, np.float32) + rng.normal(0, jitter_px, (len(kept), 4)).astype(np.float32)
    scores = np.clip(rng.normal(score, 0.05, len(kept)), 0.55, 0.99).astype(np.float32)
    return Detections.from_arrays(xyxy, scores)
