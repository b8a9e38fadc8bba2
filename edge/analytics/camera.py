"""All analytics of one camera behind one `update`, with live swaps of its geometry."""

from __future__ import annotations

from dataclasses import dataclass

from edge.analytics.lines import LineCounter
from edge.analytics.shelves import ShelfCounter
from edge.analytics.types import FrameTracks, LineStats, QueueWindowStats, ShelfStats, ZoneStats
from edge.analytics.zones import QueueEstimator, ZoneCounter
from edge.config import CameraConfig, LineConfig, ShelfConfig, ZoneConfig


@dataclass(slots=True)
class CameraWindow:
    """Everything one camera's analytics measured in one window."""

    lines: list[LineStats]
    zones: list[ZoneStats]
    queues: list[QueueWindowStats]
    shelves: list[ShelfStats]


class CameraAnalytics:
    """Line, zone, queue and shelf analytics of one camera, driven by tracks and timestamps."""

    def __init__(self, camera: CameraConfig) -> None:
        self.lines: dict[str, LineCounter] = {}
        self.zones: dict[str, ZoneCounter] = {}
        self.queues: dict[str, QueueEstimator] = {}
        self.shelves: dict[str, ShelfCounter] = {}
        self._last_t: float | None = None
        self.update_camera(camera)

    def update_camera(self, camera: CameraConfig) -> None:
        """Swap the geometry; counters whose config did not change keep their state."""
        self.camera = camera
        self.lines = {c.id: self._line(c) for c in camera.lines}
        self.zones = {c.id: self._zone(c) for c in camera.zones}
        self.queues = {
            c.id: self.queues.get(c.id) or QueueEstimator()
            for c in camera.zones
            if c.kind == "queue"
        }
        self.shelves = {c.id: self._shelf(c) for c in camera.shelves}

    def _line(self, c: LineConfig) -> LineCounter:
        old = self.lines.get(c.id)
        return old if old is not None and old.config == c else LineCounter(c)

    def _zone(self, c: ZoneConfig) -> ZoneCounter:
        old = self.zones.get(c.id)
        keep = old is not None and old.config == c
        return old if keep and old is not None else ZoneCounter(c, window_start=self._last_t)

    def _shelf(self, c: ShelfConfig) -> ShelfCounter:
        old = self.shelves.get(c.id)
        return old if old is not None and old.config == c else ShelfCounter(c)

    def update(self, frame: FrameTracks) -> None:
        """Advance every counter with one frame."""
        self._last_t = frame.t
        for line in self.lines.values():
            line.update(frame)
        for zone in self.zones.values():
            zone.update(frame)
        for shelf in self.shelves.values():
            shelf.update(frame)

    def take_window(self, start: float, end: float) -> CameraWindow:
        """Close the window [start, end) and start the next."""
        zones = [z.take_window(end) for z in self.zones.values()]
        queues = [
            self.queues[z.zone_id].window(z, end - start) for z in zones if z.zone_id in self.queues
        ]
        return CameraWindow(
            lines=[line.take_window() for line in self.lines.values()],
            zones=zones,
            queues=queues,
            shelves=[s.take_window() for s in self.shelves.values()],
        )

    @property
    def tracked(self) -> int:
        """Per-track states held across all counters (for memory checks)."""
        return (
            sum(x.tracked for x in self.lines.values())
            + sum(z.presence.tracked for z in self.zones.values())
            + sum(s.presence.tracked for s in self.shelves.values())
        )
