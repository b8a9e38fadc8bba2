"""The message-free fast check agrees with the explaining checks on every report field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud.ingest.validate import MAX_COUNT, MAX_OCCUPANCY, _check_report, _InvalidError, _report_ok
from cloud.simulator.envelopes import window_envelope
from protos.mallpulse.v1 import telemetry_pb2

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _report() -> telemetry_pb2.WindowReport:
    env = window_envelope(store_id="s1", device_id="d1", sequence=1,
                          start=NOW - timedelta(minutes=1), end=NOW,
                          lines={"door": (3, 1)}, zones={"z": 2}, queues={"q": (1, 30.0)},
                          shelves={"s": (1, 5.0)}, demographics={(1, 1): 2})  # fmt: skip
    return env.window


def _explains(report: telemetry_pb2.WindowReport) -> bool:
    try:
        _check_report(report)
    except _InvalidError:
        return False
    return True


BREAKS: list[tuple[str, str, Any]] = [
    ("lines", "line_id", "bad id!"),
    ("lines", "in_count", MAX_COUNT + 1),
    ("lines", "out_count", MAX_COUNT + 1),
    ("zones", "zone_id", ""),
    ("zones", "avg_occupancy", math.nan),
    ("zones", "avg_occupancy", -0.5),
    ("zones", "max_occupancy", MAX_OCCUPANCY + 1),
    ("zones", "occupancy_at_end", MAX_OCCUPANCY + 1),
    ("zones", "entries", MAX_COUNT + 1),
    ("zones", "exits", MAX_COUNT + 1),
    ("queues", "zone_id", "a b"),
    ("queues", "avg_length", math.inf),
    ("queues", "length_at_end", MAX_OCCUPANCY + 1),
    ("queues", "max_length", MAX_OCCUPANCY + 1),
    ("queues", "served", MAX_COUNT + 1),
    ("queues", "service_rate_per_min", 1e5),
    ("queues", "estimated_wait_s", -1.0),
    ("shelves", "shelf_id", "x" * 65),
    ("shelves", "interactions", MAX_COUNT + 1),
    ("shelves", "total_dwell_s", math.nan),
]


def test_a_valid_report_passes_both() -> None:
    report = _report()
    assert _report_ok(report) and _explains(report)


@pytest.mark.parametrize(("group", "field", "value"), BREAKS)
def test_every_broken_field_fails_both(group: str, field: str, value: Any) -> None:
    report = _report()
    setattr(getattr(report, group)[0], field, value)
    assert not _report_ok(report)
    assert not _explains(report)


def test_histograms_and_demographics_fail_both() -> None:
    report = _report()
    report.zones[0].dwell.counts.append(1)  # one count too many for the bounds
    assert not _report_ok(report) and not _explains(report)
    report = _report()
    report.zones[0].dwell.total_s = -1.0
    assert not _report_ok(report) and not _explains(report)
    report = _report()
    report.demographics.counts[0].count = MAX_COUNT + 1
    assert not _report_ok(report) and not _explains(report)
