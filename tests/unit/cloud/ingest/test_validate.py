"""Pure envelope validation: every rejection reason, and what passes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud.ingest.validate import Incoming, Limits, Reason, Rejection, decode
from cloud.simulator.envelopes import health_envelope, window_envelope
from protos.mallpulse.v1 import telemetry_pb2

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_bytes=2048, max_skew_s=300, max_age_s=7 * 86400)


def _env(**kw: Any) -> telemetry_pb2.Envelope:
    end = kw.pop("end", NOW)
    return window_envelope(store_id="s1", device_id="d1", sequence=kw.pop("sequence", 5),
                           start=end - timedelta(minutes=1), end=end, **kw)  # fmt: skip


def _item(env: telemetry_pb2.Envelope | bytes, **kw: Any) -> Incoming:
    raw = env if isinstance(env, bytes) else env.SerializeToString()
    meta = {"store_id": "s1", "device_id": "d1", "kind": "window", **kw}
    return Incoming(raw, "mqtt", **meta)


def _mutate(field: str, value: Any) -> telemetry_pb2.Envelope:
    env = _env(lines={"door": (1, 1)}, zones={"z": 2}, queues={"q": (1, 30.0)},
               shelves={"s": (1, 5.0)})  # fmt: skip
    target, _, attr = field.rpartition(".")
    obj: Any = env
    for part in filter(None, target.split(".")):
        obj = getattr(obj, part)
        if hasattr(obj, "add"):
            obj = obj[0]
    setattr(obj, attr, value)
    return env


def test_valid_window_and_health_pass() -> None:
    assert isinstance(decode(_item(_env(lines={"door": (3, 1)})), LIMITS, NOW),
                      telemetry_pb2.Envelope)  # fmt: skip
    health = health_envelope(store_id="s1", device_id="d1", sequence=1,
                             start=NOW - timedelta(seconds=30), end=NOW)  # fmt: skip
    assert isinstance(decode(_item(health, kind="health"), LIMITS, NOW), telemetry_pb2.Envelope)


@pytest.mark.parametrize(
    ("item", "reason", "words"),
    [
        (_item(b"\x0a\xff\xff"), Reason.BAD_PROTOBUF, "Envelope"),
        (_item(_env(shelves={f"s{i}": (1, 1.0) for i in range(200)})), Reason.OVERSIZE, "bytes"),
        (_item(_env(), device_id="d2"), Reason.DEVICE_MISMATCH, "d2"),
        (_item(_env(), store_id="s9"), Reason.STORE_MISMATCH, "s9"),
        (_item(_env(), kind="health"), Reason.BAD_PAYLOAD, "health"),
        (_item(_env(sequence=0)), Reason.OUT_OF_RANGE, "sequence"),
        (_item(_env(end=NOW + timedelta(minutes=10))), Reason.OUT_OF_RANGE, "future"),
        (_item(_env(end=NOW - timedelta(days=8))), Reason.OUT_OF_RANGE, "days ago"),
        (_item(_env(lines={"bad id!": (1, 0)})), Reason.BAD_PAYLOAD, "line_id"),
        (_item(_env(lines={"door": (200_000, 0)})), Reason.OUT_OF_RANGE, "in_count"),
        (_item(_mutate("window.zones.avg_occupancy", math.inf)), Reason.OUT_OF_RANGE, "avg_occ"),
        (_item(_mutate("window.zones.avg_occupancy", -1.0)), Reason.OUT_OF_RANGE, "avg_occ"),
        (_item(_mutate("window.queues.estimated_wait_s", math.nan)), Reason.OUT_OF_RANGE, "wait"),
        (_item(_mutate("window.shelves.total_dwell_s", -5.0)), Reason.OUT_OF_RANGE, "dwell"),
        (_item(_mutate("schema_version", 2)), Reason.UNSUPPORTED_SCHEMA, "schema_version"),
        (_item(_mutate("camera_id", "")), Reason.BAD_PAYLOAD, "camera_id"),
    ],
)
def test_rejections(item: Incoming, reason: Reason, words: str) -> None:
    verdict = decode(item, LIMITS, NOW)
    assert isinstance(verdict, Rejection)
    assert verdict.code is reason and words in verdict.reason


def test_window_must_have_positive_length() -> None:
    env = _env()
    env.window_end.CopyFrom(env.window_start)
    verdict = decode(_item(env), LIMITS, NOW)
    assert isinstance(verdict, Rejection) and "length" in verdict.reason


def test_histogram_shape_and_enums_are_checked() -> None:
    env = _env(zones={"z": 1})
    env.window.zones[0].dwell.counts.append(9)
    verdict = decode(_item(env), LIMITS, NOW)
    assert isinstance(verdict, Rejection) and "len(counts)" in verdict.reason
    env = _env(demographics={(1, 1): 2})
    raw = env.SerializeToString().replace(b"\x08\x01\x10\x01", b"\x08\x63\x10\x01")
    verdict = decode(_item(raw), LIMITS, NOW)
    assert isinstance(verdict, Rejection) and verdict.code is Reason.OUT_OF_RANGE


def test_health_ranges() -> None:
    env = health_envelope(store_id="s1", device_id="d1", sequence=1,
                          start=NOW - timedelta(seconds=30), end=NOW)  # fmt: skip
    env.health.temperature_c = 500.0
    verdict = decode(_item(env, kind="health"), LIMITS, NOW)
    assert isinstance(verdict, Rejection) and "temperature" in verdict.reason


@pytest.mark.parametrize(
    ("field", "seconds", "nanos"),
    [("window_start", 2**62, 0), ("window_end", -(2**40), 0), ("window_end", 10, -5)],
)
def test_timestamps_outside_the_timestamp_range_are_rejected_not_raised(
    field: str, seconds: int, nanos: int
) -> None:
    # binary protobuf parsing accepts any int64 seconds; a datetime would overflow on them
    env = _env()
    getattr(env, field).seconds = seconds
    getattr(env, field).nanos = nanos
    out = decode(_item(env), LIMITS, NOW)
    assert isinstance(out, Rejection) and out.code is Reason.OUT_OF_RANGE
    assert field in out.reason


def test_a_check_that_fails_unexpectedly_rejects_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cloud.ingest.validate as validate

    def broken_check(*_: Any) -> None:
        raise OverflowError("date value out of range")  # as an unforeseen value would

    monkeypatch.setattr(validate, "_check_envelope", broken_check)
    verdict = decode(_item(_env()), LIMITS, NOW)
    assert isinstance(verdict, Rejection)
    assert verdict.code is Reason.UNPROCESSABLE
    assert "OverflowError" in verdict.reason


@pytest.mark.parametrize(
    ("zone_id", "valence", "count", "words"),
    [
        ("z", 99, 1, "unknown valence 99"),
        ("bad zone!", 1, 1, "zone_id"),
        ("z", 1, 10**9, "count"),
    ],
)
def test_emotion_counts_are_checked(zone_id: str, valence: int, count: int, words: str) -> None:
    env = _env()
    env.window.emotions.add(zone_id=zone_id, valence=valence, count=count)  # type: ignore[arg-type]
    verdict = decode(_item(env), LIMITS, NOW)
    assert isinstance(verdict, Rejection) and words in verdict.reason


def test_emotions_outside_every_zone_pass() -> None:
    env = _env(emotions={("", 2): 3, ("z", 1): 1})
    assert not isinstance(decode(_item(env), LIMITS, NOW), Rejection)
