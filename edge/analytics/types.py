"""Inputs and window outputs of the analytics: tracks as normalised anchor points."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class FrameTracks:
    """Visible confirmed tracks on one frame: ids and anchors (normalised 0..1), and ended ids."""

    t: float
    ids: npt.NDArray[np.int64]
    points: npt.NDArray[np.float64]
    removed: tuple[int, ...] = ()

    @classmethod
    def of(
        cls, t: float, tracks: dict[int, tuple[float, float]], removed: tuple[int, ...] = ()
    ) -> FrameTracks:
        """Build from {track id: (x, y)}."""
        ids = np.fromiter(tracks.keys(), np.int64, len(tracks))
        pts = np.array(list(tracks.values()), np.float64).reshape(-1, 2)
        return cls(t, ids, pts, removed)


@dataclass(slots=True)
class Histogram:
    """Dwell histogram: counts[i] holds values <= bounds[i]; the last count is the overflow."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def add(self, value: float) -> None:
        """Count one duration."""
        self.counts[int(np.searchsorted(self.bounds, value, side="left"))] += 1
        self.total_s += value

    @property
    def n(self) -> int:
        """How many durations were counted."""
        return sum(self.counts)


@dataclass(slots=True)
class LineStats:
    """In and out crossings of one line in a window."""

    line_id: str
    in_count: int = 0
    out_count: int = 0


@dataclass(slots=True)
class ZoneStats:
    """Occupancy, entries, exits and dwell of one zone in a window."""

    zone_id: str
    avg_occupancy: float
    max_occupancy: int
    occupancy_at_end: int
    entries: int
    exits: int
    dwell: Histogram


@dataclass(slots=True)
class QueueWindowStats:
    """Queue length, people served and the wait estimate of one queue zone in a window."""

    zone_id: str
    avg_length: float
    max_length: int
    length_at_end: int
    served: int
    service_rate_per_min: float
    estimated_wait_s: float


@dataclass(slots=True)
class ShelfStats:
    """Interactions with one shelf in a window (visits that ended in it)."""

    shelf_id: str
    interactions: int
    dwell: Histogram
