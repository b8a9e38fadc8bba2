"""Pure decoding and validation of incoming envelopes; every rejection carries a reason code."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from google.protobuf.message import DecodeError

from cloud.ingest.rows import utc
from protos.mallpulse.v1 import telemetry_pb2

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_COUNT = 100_000  # people per window per line/zone: far above any real store
MAX_OCCUPANCY = 10_000
MAX_SECONDS = 7 * 86400.0
MAX_WINDOW_S = 86400
#: google.protobuf.Timestamp's valid seconds (0001-01-01 .. 9999-12-31); binary parsing does not
#: enforce them, and a datetime cannot hold what lies outside
_TS_SECONDS = (-62_135_596_800, 253_402_300_799)
_AGE_BANDS = frozenset(telemetry_pb2.AgeBand.values())
_GENDERS = frozenset(telemetry_pb2.Gender.values())
_VALENCES = frozenset(telemetry_pb2.Valence.values())


class Reason(StrEnum):
    """Why an envelope was dead-lettered."""

    BAD_PROTOBUF = "bad_protobuf"
    OVERSIZE = "oversize"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    UNKNOWN_DEVICE = "unknown_device"
    STORE_MISMATCH = "store_mismatch"
    DEVICE_MISMATCH = "device_mismatch"
    BAD_PAYLOAD = "bad_payload"
    OUT_OF_RANGE = "out_of_range"
    UNPROCESSABLE = "unprocessable"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One raw message and what its transport says about it (topic parts or the authenticated
    device); `ref` is the transport's handle to acknowledge it (MQTT mid, gRPC index)."""

    payload: bytes
    transport: str
    ref: object = None
    topic: str | None = None
    store_id: str | None = None
    device_id: str | None = None
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A dead-letter verdict."""

    code: Reason
    reason: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Acceptance limits taken from Settings."""

    max_bytes: int = 65536
    max_skew_s: float = 300.0
    max_age_s: float = 30 * 86400.0


class _InvalidError(Exception):
    def __init__(self, code: Reason, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def decode(item: Incoming, limits: Limits, now: datetime) -> telemetry_pb2.Envelope | Rejection:
    """Parse and check one message: the Envelope, or why it must be dead-lettered."""
    if len(item.payload) > limits.max_bytes:
        return Rejection(
            Reason.OVERSIZE, f"{len(item.payload)} bytes exceeds the limit of {limits.max_bytes}"
        )
    env = telemetry_pb2.Envelope()
    try:
        env.ParseFromString(item.payload)
    except DecodeError as exc:
        return Rejection(Reason.BAD_PROTOBUF, f"not a mallpulse.v1.Envelope: {exc}")
    try:
        _check_envelope(env, item, limits, now)
    except _InvalidError as exc:
        return Rejection(exc.code, exc.reason)
    except (ArithmeticError, ValueError, TypeError) as exc:  # a value the checks did not foresee
        return Rejection(Reason.UNPROCESSABLE, f"checks failed on this envelope: {exc!r}")
    return env


def _check_envelope(
    env: telemetry_pb2.Envelope, item: Incoming, limits: Limits, now: datetime
) -> None:
    if env.schema_version != telemetry_pb2.SCHEMA_VERSION_1:
        raise _InvalidError(Reason.UNSUPPORTED_SCHEMA, f"schema_version {env.schema_version} != 1")
    for name, value in (("device_id", env.device_id), ("store_id", env.store_id)):
        if not _ID.match(value):
            raise _InvalidError(Reason.BAD_PAYLOAD, f"{name} {value!r} is not a valid id")
    if item.device_id is not None and env.device_id != item.device_id:
        raise _InvalidError(
            Reason.DEVICE_MISMATCH,
            f"envelope device {env.device_id!r} sent as device {item.device_id!r}",
        )
    if item.store_id is not None and env.store_id != item.store_id:
        raise _InvalidError(
            Reason.STORE_MISMATCH, f"envelope store {env.store_id!r} sent under {item.store_id!r}"
        )
    payload = env.WhichOneof("payload")
    if payload is None:
        raise _InvalidError(Reason.BAD_PAYLOAD, "envelope carries neither window nor health")
    if item.kind is not None and item.kind != payload:
        raise _InvalidError(Reason.BAD_PAYLOAD, f"{payload} payload on a {item.kind!r} topic")
    if payload == "window" and not _ID.match(env.camera_id):
        raise _InvalidError(Reason.BAD_PAYLOAD, f"camera_id {env.camera_id!r} is not a valid id")
    if env.sequence == 0 or env.sequence >= 2**63:
        raise _InvalidError(Reason.OUT_OF_RANGE, f"sequence {env.sequence} outside 1..2^63-1")
    _check_window(env, limits, now)
    if payload == "window":
        if not _report_ok(env.window):  # the fast check failed: find and name the problem
            _check_report(env.window)
    else:
        _check_health(env.health)


def valid_timestamp(seconds: int, nanos: int) -> bool:
    """Whether a protobuf Timestamp lies in its documented range (so a datetime can hold it)."""
    return _TS_SECONDS[0] <= seconds <= _TS_SECONDS[1] and 0 <= nanos < 10**9


def status_time_problem(
    seconds: int, nanos: int, limits: Limits, now: datetime
) -> Rejection | None:
    """Why a presence timestamp cannot be applied (None when it can): it must be a valid
    Timestamp and, like a window's end, at most `limits.max_skew_s` in the future (a status
    from the far future would outrank every later real one and pin the device's presence)."""
    if not valid_timestamp(seconds, nanos):
        return Rejection(Reason.OUT_OF_RANGE, f"`at` ({seconds}s) is no valid timestamp")
    ahead = seconds + nanos / 1e9 - now.timestamp()
    if ahead > limits.max_skew_s:
        return Rejection(Reason.OUT_OF_RANGE, f"`at` is {ahead:.0f}s in the future")
    return None


def _check_window(env: telemetry_pb2.Envelope, limits: Limits, now: datetime) -> None:
    if not env.HasField("window_start") or not env.HasField("window_end"):
        raise _InvalidError(Reason.BAD_PAYLOAD, "window_start and window_end are required")
    for name, ts in (("window_start", env.window_start), ("window_end", env.window_end)):
        if not valid_timestamp(ts.seconds, ts.nanos):
            raise _InvalidError(
                Reason.OUT_OF_RANGE, f"{name} ({ts.seconds}s, {ts.nanos}ns) is no valid timestamp"
            )
    start = utc(env.window_start)
    end = utc(env.window_end)
    length = (end - start).total_seconds()
    if not 0 < length <= MAX_WINDOW_S:
        raise _InvalidError(
            Reason.OUT_OF_RANGE, f"window length {length}s outside (0, {MAX_WINDOW_S}]"
        )
    ahead = (end - now).total_seconds()
    if ahead > limits.max_skew_s:
        raise _InvalidError(Reason.OUT_OF_RANGE, f"window ends {ahead:.0f}s in the future")
    age = (now - end).total_seconds()
    if age > limits.max_age_s:
        raise _InvalidError(Reason.OUT_OF_RANGE, f"window ended {age / 86400:.1f} days ago")


def _count(name: str, value: int, top: int = MAX_COUNT) -> None:
    if value > top:
        raise _InvalidError(Reason.OUT_OF_RANGE, f"{name} = {value} exceeds {top}")


def _real(name: str, value: float, top: float) -> None:
    if not math.isfinite(value) or not 0.0 <= value <= top:
        raise _InvalidError(Reason.OUT_OF_RANGE, f"{name} = {value} outside [0, {top}]")


def _ident(name: str, value: str) -> None:
    if not _ID.match(value):
        raise _InvalidError(Reason.BAD_PAYLOAD, f"{name} {value!r} is not a valid id")


def _histogram(name: str, hist: telemetry_pb2.DwellHistogram) -> None:
    if hist.counts and len(hist.counts) != len(hist.upper_bounds_s) + 1:
        raise _InvalidError(
            Reason.BAD_PAYLOAD, f"{name}: len(counts) must be len(upper_bounds_s)+1"
        )
    _real(f"{name}.total_s", hist.total_s, MAX_SECONDS * MAX_COUNT)
    for count in hist.counts:
        _count(f"{name}.counts", count)


def _report_ok(report: telemetry_pb2.WindowReport) -> bool:
    """True when `_check_report` would pass: the same checks, at least as strict, without
    building any message (the hot path; a False here re-runs the explaining checks)."""
    ok, n, occ = _ID.match, MAX_COUNT, MAX_OCCUPANCY
    for line in report.lines:
        if not (ok(line.line_id) and line.in_count <= n and line.out_count <= n):
            return False
    for zone in report.zones:
        dwell = zone.dwell
        counts = dwell.counts
        if not (ok(zone.zone_id) and 0.0 <= zone.avg_occupancy <= occ
                and zone.max_occupancy <= occ and zone.occupancy_at_end <= occ
                and zone.entries <= n and zone.exits <= n
                and 0.0 <= dwell.total_s <= MAX_SECONDS * n
                and (not counts or (len(counts) == len(dwell.upper_bounds_s) + 1
                                    and max(counts) <= n))):  # fmt: skip
            return False
    for q in report.queues:
        if not (ok(q.zone_id) and 0.0 <= q.avg_length <= occ and q.length_at_end <= occ
                and q.max_length <= occ and q.served <= n
                and 0.0 <= q.service_rate_per_min <= 1e4
                and 0.0 <= q.estimated_wait_s <= MAX_SECONDS):  # fmt: skip
            return False
    for shelf in report.shelves:
        if not (ok(shelf.shelf_id) and shelf.interactions <= n
                and 0.0 <= shelf.total_dwell_s <= MAX_SECONDS * 1e3):  # fmt: skip
            return False
    return all(
        c.count <= n and c.age_band in _AGE_BANDS and c.gender in _GENDERS
        for c in report.demographics.counts
    ) and all(
        m.count <= n and m.valence in _VALENCES and (not m.zone_id or ok(m.zone_id))
        for m in report.emotions
    )


def _check_report(report: telemetry_pb2.WindowReport) -> None:
    for line in report.lines:
        _ident("line_id", line.line_id)
        _count(f"lines[{line.line_id}].in_count", line.in_count)
        _count(f"lines[{line.line_id}].out_count", line.out_count)
    for zone in report.zones:
        _ident("zone_id", zone.zone_id)
        _real(f"zones[{zone.zone_id}].avg_occupancy", zone.avg_occupancy, MAX_OCCUPANCY)
        for field in ("max_occupancy", "occupancy_at_end"):
            _count(f"zones[{zone.zone_id}].{field}", getattr(zone, field), MAX_OCCUPANCY)
        _count(f"zones[{zone.zone_id}].entries", zone.entries)
        _count(f"zones[{zone.zone_id}].exits", zone.exits)
        _histogram(f"zones[{zone.zone_id}].dwell", zone.dwell)
    for queue in report.queues:
        _ident("queue zone_id", queue.zone_id)
        _real(f"queues[{queue.zone_id}].avg_length", queue.avg_length, MAX_OCCUPANCY)
        _count(f"queues[{queue.zone_id}].length_at_end", queue.length_at_end, MAX_OCCUPANCY)
        _count(f"queues[{queue.zone_id}].max_length", queue.max_length, MAX_OCCUPANCY)
        _count(f"queues[{queue.zone_id}].served", queue.served)
        _real(f"queues[{queue.zone_id}].service_rate_per_min", queue.service_rate_per_min, 1e4)
        _real(f"queues[{queue.zone_id}].estimated_wait_s", queue.estimated_wait_s, MAX_SECONDS)
    for shelf in report.shelves:
        _ident("shelf_id", shelf.shelf_id)
        _count(f"shelves[{shelf.shelf_id}].interactions", shelf.interactions)
        _real(f"shelves[{shelf.shelf_id}].total_dwell_s", shelf.total_dwell_s, MAX_SECONDS * 1e3)
    for cell in report.demographics.counts:
        _count("demographics.count", cell.count)
        if cell.age_band not in _AGE_BANDS:
            raise _InvalidError(Reason.OUT_OF_RANGE, f"unknown age band {cell.age_band}")
        if cell.gender not in _GENDERS:
            raise _InvalidError(Reason.OUT_OF_RANGE, f"unknown gender {cell.gender}")
    for mood in report.emotions:
        if mood.zone_id:
            _ident("emotions zone_id", mood.zone_id)
        _count(f"emotions[{mood.zone_id}].count", mood.count)
        if mood.valence not in _VALENCES:
            raise _InvalidError(Reason.OUT_OF_RANGE, f"unknown valence {mood.valence}")


def _text(name: str, value: str, limit: int = 128) -> None:
    if len(value) > limit or not value.isprintable():
        raise _InvalidError(Reason.BAD_PAYLOAD, f"{name} must be printable, at most {limit} chars")


def _check_health(health: telemetry_pb2.DeviceHealth) -> None:
    _text("health.software_version", health.software_version)
    for model in health.models:
        _text("health.models.name", model.name)
        _text("health.models.sha256", model.sha256)
    for cam in health.cameras:
        _ident("health.cameras.camera_id", cam.camera_id)
    _real("health.cpu_percent", health.cpu_percent, 100.0 * 1024)
    _real("health.uptime_s", health.uptime_s, 10 * 365 * 86400.0)
    _real("health.memory_used_mb", health.memory_used_mb, 1e7)
    _real("health.memory_total_mb", health.memory_total_mb, 1e7)
    _real("health.outbox_oldest_age_s", health.outbox_oldest_age_s, 10 * 365 * 86400.0)
    if health.HasField("temperature_c") and not -60.0 <= health.temperature_c <= 150.0:
        raise _InvalidError(Reason.OUT_OF_RANGE, f"health.temperature_c = {health.temperature_c}")
