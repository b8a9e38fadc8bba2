"""Pure mapping of accepted envelopes to table rows, rollup increments and live state."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from protos.mallpulse.v1 import telemetry_pb2

Row = tuple[Any, ...]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(ts: Timestamp) -> datetime:
    """`ts` as an aware UTC datetime (what `ToDatetime(tzinfo=UTC)` gives, in a third of the
    time: no range checks; only for envelopes that passed `validate.decode`, which does them)."""
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


#: Columns of each time-series table, in COPY order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "line_counts": ("store_id", "device_id", "camera_id", "line_id", "window_start", "window_end",
                    "in_count", "out_count"),
    "zone_occupancy": ("store_id", "device_id", "camera_id", "zone_id", "window_start",
                       "window_end", "avg_occupancy", "max_occupancy", "occupancy_at_end",
                       "entries", "exits", "dwell_total_s", "dwell_count"),
    "queue_stats": ("store_id", "device_id", "camera_id", "zone_id", "window_start", "window_end",
                    "avg_length", "max_length", "length_at_end", "served",
                    "service_rate_per_min", "estimated_wait_s"),
    "shelf_interactions": ("store_id", "device_id", "camera_id", "shelf_id", "window_start",
                           "window_end", "interactions", "total_dwell_s"),
    "demographics": ("store_id", "device_id", "camera_id", "window_start", "window_end",
                     "age_band", "gender", "count"),
    "emotions": ("store_id", "device_id", "camera_id", "zone_id", "window_start", "window_end",
                 "valence", "count"),
    "device_health": ("store_id", "device_id", "window_start", "window_end", "uptime_s",
                      "cpu_percent", "memory_used_mb", "memory_total_mb", "temperature_c",
                      "outbox_depth", "outbox_oldest_age_s", "cameras_connected",
                      "cameras_total", "software_version", "config_version"),
}  # fmt: skip


@dataclass
class Batch:
    """Everything one transaction writes for the accepted envelopes of a batch."""

    rows: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in COLUMNS})
    #: (store, line, utc hour) -> [in, out]
    hourly: dict[tuple[str, str, datetime], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    #: (store, line, window_start) -> [in, out]; the local day is resolved in SQL
    lines: dict[tuple[str, str, datetime], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    #: (store, zone) -> (window_end, occupancy); the latest window wins
    live_zones: dict[tuple[str, str], tuple[datetime, int]] = field(default_factory=dict)
    #: (store, zone) -> (window_end, length, estimated wait)
    live_queues: dict[tuple[str, str], tuple[datetime, int, float]] = field(default_factory=dict)
    #: (store, kind, id) of lines and zones seen
    catalogue: set[tuple[str, str, str]] = field(default_factory=set)
    #: (store, device, camera) seen
    cameras: set[tuple[str, str, str]] = field(default_factory=set)
    #: per store: the summary sent to live subscribers
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(
        self,
        env: telemetry_pb2.Envelope,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Add one accepted envelope (its window bounds may be passed in if already known)."""
        start = utc(env.window_start) if start is None else start
        end = utc(env.window_end) if end is None else end
        if env.WhichOneof("payload") == "health":
            self.rows["device_health"].append(_health_row(env, start, end))
            return
        self.cameras.add((env.store_id, env.device_id, env.camera_id))
        self._add_report(env, start, end)

    def _add_report(self, env: telemetry_pb2.Envelope, start: datetime, end: datetime) -> None:
        store, report = env.store_id, env.window
        key = (store, env.device_id, env.camera_id)
        event = self._event(store, end)
        catalogue = self.catalogue.add
        self._add_lines(env, start, end, event)
        rows, live_zones, live_queues = self.rows["zone_occupancy"], event["zones"], event["queues"]
        for zone in report.zones:
            zid, at_end = zone.zone_id, zone.occupancy_at_end
            dwell = zone.dwell
            rows.append((*key, zid, start, end, zone.avg_occupancy, zone.max_occupancy, at_end,
                         zone.entries, zone.exits, dwell.total_s, sum(dwell.counts)))  # fmt: skip
            _latest(self.live_zones, (store, zid), (end, at_end))
            catalogue((store, "zone", zid))
            live_zones[zid] = at_end
        rows = self.rows["queue_stats"]
        for queue in report.queues:
            zid, length, wait = queue.zone_id, queue.length_at_end, queue.estimated_wait_s
            rows.append((*key, zid, start, end, queue.avg_length, queue.max_length, length,
                         queue.served, queue.service_rate_per_min, wait))  # fmt: skip
            _latest(self.live_queues, (store, zid), (end, length, wait))
            catalogue((store, "queue", zid))
            live_queues[zid] = length
        rows = self.rows["shelf_interactions"]
        for shelf in report.shelves:
            sid = shelf.shelf_id
            rows.append((*key, sid, start, end, shelf.interactions, shelf.total_dwell_s))
            catalogue((store, "shelf", sid))
        rows = self.rows["demographics"]
        for cell in report.demographics.counts:
            rows.append((*key, start, end, _BANDS[cell.age_band], _GENDERS[cell.gender],
                         cell.count))  # fmt: skip
        rows = self.rows["emotions"]
        for mood in report.emotions:
            rows.append((*key, mood.zone_id, start, end, _VALENCES[mood.valence], mood.count))

    def _add_lines(
        self, env: telemetry_pb2.Envelope, start: datetime, end: datetime, event: dict[str, Any]
    ) -> None:
        store = env.store_id
        key = (store, env.device_id, env.camera_id)
        hour = start.replace(minute=0, second=0, microsecond=0)
        rows = self.rows["line_counts"]
        for line in env.window.lines:
            lid, n_in, n_out = line.line_id, line.in_count, line.out_count
            rows.append((*key, lid, start, end, n_in, n_out))
            for acc in (self.hourly[(store, lid, hour)], self.lines[(store, lid, start)]):
                acc[0] += n_in
                acc[1] += n_out
            self.catalogue.add((store, "line", lid))
            event["in"] += n_in
            event["out"] += n_out

    def _event(self, store_id: str, end: datetime) -> dict[str, Any]:
        event = self.events.setdefault(
            store_id,
            {"store_id": store_id, "window_end": end, "in": 0, "out": 0, "zones": {},
             "queues": {}},
        )  # fmt: skip
        event["window_end"] = max(event["window_end"], end)
        return event

    @property
    def row_count(self) -> int:
        """Time-series rows in this batch."""
        return sum(len(rows) for rows in self.rows.values())


def _latest(state: dict[Any, Any], key: tuple[str, str], value: tuple[Any, ...]) -> None:
    if key not in state or state[key][0] <= value[0]:
        state[key] = value


def _band(value: telemetry_pb2.AgeBand.ValueType) -> str:
    name: str = telemetry_pb2.AgeBand.Name(value)
    return name.removeprefix("AGE_BAND_").lower().replace("_plus", "+").replace("_", "-")


def _gender(value: telemetry_pb2.Gender.ValueType) -> str:
    name: str = telemetry_pb2.Gender.Name(value)
    return name.removeprefix("GENDER_").lower()


#: Enum value -> stored label (validation rejects values outside these).
_BANDS = {value: _band(value) for value in telemetry_pb2.AgeBand.values()}
_GENDERS = {value: _gender(value) for value in telemetry_pb2.Gender.values()}
_VALENCES = {
    value: telemetry_pb2.Valence.Name(value).removeprefix("VALENCE_").lower()
    for value in telemetry_pb2.Valence.values()
}


def _health_row(env: telemetry_pb2.Envelope, start: datetime, end: datetime) -> Row:
    h = env.health
    temperature = h.temperature_c if h.HasField("temperature_c") else None
    connected = sum(1 for cam in h.cameras if cam.connected)
    return (
        env.store_id, env.device_id, start, end, h.uptime_s, h.cpu_percent, h.memory_used_mb,
        h.memory_total_mb, temperature, h.outbox_depth, h.outbox_oldest_age_s, connected,
        len(h.cameras), h.software_version, h.config_version,
    )  # fmt: skip
