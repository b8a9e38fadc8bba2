"""Shelf/product interaction: staying in a shelf zone at least `min_dwell_s` is one interaction."""

from __future__ import annotations

from edge.analytics.presence import Presence
from edge.analytics.types import FrameTracks, Histogram, ShelfStats
from edge.config import ShelfConfig
from edge.config.camera import DEFAULT_DWELL_BUCKETS_S

EXIT_GRACE_S = 0.5  # a visit survives the anchor leaving the zone this long (reaching, jitter)


class ShelfCounter:
    """Counts one interaction per qualifying visit, in the window where the visit ends."""

    def __init__(self, config: ShelfConfig) -> None:
        self.config = config
        self.presence = Presence(config.polygon, enter_s=0.0, exit_s=EXIT_GRACE_S)
        self._dwell = Histogram(DEFAULT_DWELL_BUCKETS_S)

    def update(self, frame: FrameTracks) -> None:
        """Advance with one frame."""
        _, ended = self.presence.update(frame)
        for visit in ended:
            if visit.dwell_s >= self.config.min_dwell_s:
                self._dwell.add(visit.dwell_s)

    @property
    def pending(self) -> int:
        """Interactions counted so far in the open window."""
        return self._dwell.n

    def take_window(self) -> ShelfStats:
        """The window's interactions; counting restarts."""
        stats = ShelfStats(self.config.id, self._dwell.n, self._dwell)
        self._dwell = Histogram(DEFAULT_DWELL_BUCKETS_S)
        return stats
