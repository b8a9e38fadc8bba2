"""Zone occupancy, entries, exits and dwell; queue length, served people and wait estimates."""

from __future__ import annotations

from edge.analytics.presence import Presence
from edge.analytics.types import FrameTracks, Histogram, QueueWindowStats, ZoneStats
from edge.config import ZoneConfig

SERVICE_RATE_SMOOTHING = 0.3  # weight of the newest window in the smoothed service rate


class ZoneCounter:
    """Occupancy of one zone over time, with a time-weighted average per window."""

    def __init__(self, config: ZoneConfig, *, window_start: float | None = None) -> None:
        self.config = config
        self.presence = Presence(
            config.polygon, enter_s=config.min_presence_s, exit_s=config.min_presence_s
        )
        self._reset(window_start)
        self._last_t: float | None = window_start

    def _reset(self, start: float | None) -> None:
        self._start = start
        self._area = 0.0
        self._max = self.presence.inside_count
        self._entries = 0
        self._dwell = Histogram(self.config.dwell_buckets_s)

    def _advance(self, t: float) -> None:
        if self._last_t is not None and t > self._last_t:
            self._area += self.presence.inside_count * (t - self._last_t)
        if self._start is None:
            self._start = t
        self._last_t = t if self._last_t is None else max(self._last_t, t)

    def update(self, frame: FrameTracks) -> None:
        """Advance with one frame."""
        self._advance(frame.t)
        entered, ended = self.presence.update(frame)
        self._entries += len(entered)
        for visit in ended:
            self._dwell.add(visit.dwell_s)
        # debounced changes hold from their back-dated times: correct the occupancy integral
        start = self._start if self._start is not None else frame.t
        self._area += sum(frame.t - max(at, start) for at in entered)
        self._area -= sum(frame.t - max(v.exited_at, start) for v in ended)
        self._max = max(self._max, self.presence.inside_count)

    def take_window(self, end: float) -> ZoneStats:
        """Close the window at `end` and start the next one."""
        self._advance(end)
        start = self._start if self._start is not None else end
        span = end - start
        now = self.presence.inside_count
        stats = ZoneStats(
            zone_id=self.config.id,
            avg_occupancy=self._area / span if span > 0 else float(now),
            max_occupancy=self._max,
            occupancy_at_end=now,
            entries=self._entries,
            exits=self._dwell.n,
            dwell=self._dwell,
        )
        self._reset(end)
        return stats


class QueueEstimator:
    """Turns a queue zone's window stats into length, service rate and an estimated wait."""

    def __init__(self) -> None:
        self.rate_per_min: float | None = None

    def window(self, zone: ZoneStats, length_s: float) -> QueueWindowStats:
        """Queue stats of one window; the service rate is smoothed across windows."""
        observed = zone.exits / (length_s / 60.0) if length_s > 0 else 0.0
        if self.rate_per_min is None:
            self.rate_per_min = observed
        else:
            a = SERVICE_RATE_SMOOTHING
            self.rate_per_min = a * observed + (1 - a) * self.rate_per_min
        length = zone.occupancy_at_end
        if length == 0:
            wait = 0.0
        elif self.rate_per_min > 0:
            wait = length / self.rate_per_min * 60.0
        else:  # nobody served yet: the mean time queued so far is the best guess
            wait = zone.dwell.total_s / zone.dwell.n if zone.dwell.n else 0.0
        return QueueWindowStats(
            zone_id=zone.zone_id,
            avg_length=zone.avg_occupancy,
            max_length=zone.max_occupancy,
            length_at_end=length,
            served=zone.exits,
            service_rate_per_min=self.rate_per_min,
            estimated_wait_s=wait,
        )
