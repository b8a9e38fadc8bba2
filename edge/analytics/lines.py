"""Directional line counting with hysteresis: each real crossing counts once, jitter never."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.analytics.geometry import signed_distance
from edge.analytics.types import FrameTracks, LineStats
from edge.config import LineConfig

_CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
_END_TOLERANCE = 0.02  # normalised slack past the line's ends


@dataclass(slots=True)
class _Side:
    side: int  # +1 right of the line, -1 left
    x: float  # last point seen clearly on that side
    y: float
    d: float  # its signed distance


class LineCounter:
    """Counts in/out crossings of one line from track anchor points.

    A track has a side once its anchor is farther than the hysteresis from the line; a crossing
    is a change of side whose path passes between the line's ends. Near a frame edge the
    hysteresis shrinks to half the room left on that side, so lines close to an edge still count.
    """

    def __init__(self, config: LineConfig) -> None:
        self.config = config
        (ax, ay), (bx, by) = config.points
        self._a, self._b = (ax, ay), (bx, by)
        self._dir = np.array([bx - ax, by - ay])
        corners = signed_distance(_CORNERS, self._a, self._b)
        self._hyst_pos = min(config.min_distance, 0.5 * max(float(corners.max()), 0.0))
        self._hyst_neg = min(config.min_distance, 0.5 * max(float(-corners.min()), 0.0))
        self._in_sign = 1 if config.in_direction == "right" else -1
        self._sides: dict[int, _Side] = {}
        self.stats = LineStats(config.id)

    def update(self, frame: FrameTracks) -> None:
        """Advance with one frame's anchors; ended tracks are forgotten."""
        dist = signed_distance(frame.points, self._a, self._b)
        for tid, (x, y), d in zip(
            frame.ids.tolist(), frame.points.tolist(), dist.tolist(), strict=True
        ):
            if d >= self._hyst_pos and d > 0:
                self._observe(tid, 1, x, y, d)
            elif d <= -self._hyst_neg and d < 0:
                self._observe(tid, -1, x, y, d)
        for tid in frame.removed:
            self._sides.pop(tid, None)

    def _observe(self, tid: int, side: int, x: float, y: float, d: float) -> None:
        prev = self._sides.get(tid)
        if prev is not None and prev.side != side and self._between_ends(prev, x, y, d):
            if side == self._in_sign:
                self.stats.in_count += 1
            else:
                self.stats.out_count += 1
        self._sides[tid] = _Side(side, x, y, d)

    def _between_ends(self, prev: _Side, x: float, y: float, d: float) -> bool:
        """Whether the path from `prev` to (x, y) meets the line between its two ends."""
        frac = prev.d / (prev.d - d)
        cx, cy = prev.x + (x - prev.x) * frac, prev.y + (y - prev.y) * frac
        length = float(np.hypot(*self._dir))
        u = ((cx - self._a[0]) * self._dir[0] + (cy - self._a[1]) * self._dir[1]) / length
        return bool(-_END_TOLERANCE <= u <= length + _END_TOLERANCE)

    def take_window(self) -> LineStats:
        """The window's counts; counting restarts at zero."""
        stats, self.stats = self.stats, LineStats(self.config.id)
        return stats

    @property
    def tracked(self) -> int:
        """Tracks with per-line state (for memory checks)."""
        return len(self._sides)
