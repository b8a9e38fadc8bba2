"""The canonical track type and the `Tracker` protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from edge.detect.types import Detections


@dataclass(frozen=True, slots=True)
class Track:
    """A confirmed track seen on the current frame: id, box (xyxy pixels), score, class."""

    id: int
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    class_id: int = 0

    @property
    def anchor(self) -> tuple[float, float]:
        """Bottom-centre of the box (where the person stands), in pixels."""
        return ((self.x1 + self.x2) / 2.0, self.y2)


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """Result of one tracker step: visible confirmed tracks and ids of tracks that ended."""

    tracks: list[Track]
    removed: list[int] = field(default_factory=list)


class Tracker(Protocol):
    """Associates detections over time."""

    def update(self, detections: Detections, t: float) -> TrackUpdate:
        """Advance one frame at time `t` (seconds) with this frame's detections."""
        ...

    def flush(self) -> list[int]:
        """End every confirmed track (shutdown); returns their ids."""
        ...
