"""Zones: debounced presence, exact dwell, time-weighted occupancy, queue wait estimates."""

from __future__ import annotations

import pytest

from edge.analytics import FrameTracks, QueueEstimator, ZoneCounter
from edge.config import ZoneConfig

SQUARE = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]
IN, OUT = (0.5, 0.5), (0.9, 0.9)


def _zone(**kw: object) -> ZoneCounter:
    return ZoneCounter(ZoneConfig(id="z", polygon=SQUARE, **kw), window_start=0.0)


def test_dwell_is_back_dated_to_the_first_frame_inside() -> None:
    zone = _zone(min_presence_s=0.5)
    for i in range(40):  # 10 fps: outside 0..0.9, inside 1.0..2.9, outside from 3.0
        t = i * 0.1
        zone.update(FrameTracks.of(t, {7: IN if 1.0 <= t < 3.0 - 1e-9 else OUT}))
    stats = zone.take_window(4.0)
    assert (stats.entries, stats.exits) == (1, 1)
    assert stats.dwell.total_s == pytest.approx(2.0)
    assert stats.dwell.counts[0] == 1  # <= 5 s bucket
    assert stats.avg_occupancy == pytest.approx(2.0 / 4.0)  # back-dated, despite the debounce


def test_short_visits_and_border_jitter_are_debounced() -> None:
    zone = _zone(min_presence_s=0.5)
    pattern = [OUT, IN, IN, OUT, OUT, OUT, OUT, OUT, OUT, IN, OUT, OUT, OUT, OUT, OUT, OUT]
    for i, p in enumerate(pattern):
        zone.update(FrameTracks.of(i * 0.1, {1: p}))
    stats = zone.take_window(2.0)
    assert (stats.entries, stats.exits, stats.max_occupancy) == (0, 0, 0)


def test_average_occupancy_is_time_weighted() -> None:
    zone = _zone(min_presence_s=0.0)
    zone.update(FrameTracks.of(0.0, {1: IN, 2: IN}))
    zone.update(FrameTracks.of(6.0, {1: IN, 2: OUT}))
    stats = zone.take_window(10.0)
    # two inside for 6 s, one for 4 s
    assert stats.avg_occupancy == pytest.approx((2 * 6 + 1 * 4) / 10)
    assert (stats.max_occupancy, stats.occupancy_at_end) == (2, 1)
    nxt = zone.take_window(20.0)
    assert nxt.avg_occupancy == pytest.approx(1.0) and nxt.entries == 0


def test_a_track_that_ends_inside_exits_at_its_last_sighting() -> None:
    zone = _zone(min_presence_s=0.0)
    zone.update(FrameTracks.of(1.0, {3: IN}))
    zone.update(FrameTracks.of(2.5, {3: IN}))
    zone.update(FrameTracks.of(4.0, {}, removed=(3,)))
    stats = zone.take_window(5.0)
    assert stats.exits == 1 and stats.dwell.total_s == pytest.approx(1.5)
    assert zone.presence.tracked == 0


def test_queue_wait_from_the_observed_service_rate() -> None:
    zone = _zone(min_presence_s=0.0, kind="queue")
    for tid in range(1, 5):
        zone.update(FrameTracks.of(0.0, {tid: IN for tid in range(1, 5)}))
    # two served in the first minute, two still waiting
    zone.update(FrameTracks.of(30.0, {1: OUT, 2: OUT, 3: IN, 4: IN}))
    queue = QueueEstimator()
    stats = queue.window(zone.take_window(60.0), 60.0)
    assert stats.served == 2 and stats.length_at_end == 2
    assert stats.service_rate_per_min == pytest.approx(2.0)
    assert stats.estimated_wait_s == pytest.approx(60.0)
    empty = queue.window(zone.take_window(120.0), 60.0)
    assert empty.service_rate_per_min == pytest.approx(0.7 * 2.0)  # smoothed across windows
