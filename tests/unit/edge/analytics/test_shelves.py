"""Shelf interactions: one per visit of at least min_dwell_s, brief exits do not split it."""

from __future__ import annotations

import pytest

from edge.analytics import FrameTracks, ShelfCounter
from edge.config import ShelfConfig

SHELF = ShelfConfig(
    id="s", polygon=[(0.0, 0.0), (0.3, 0.0), (0.3, 0.3), (0.0, 0.3)], min_dwell_s=2.0
)
IN, OUT = (0.1, 0.1), (0.6, 0.6)


def _run(samples: list[tuple[float, tuple[float, float] | None]]) -> tuple[int, float]:
    shelf = ShelfCounter(SHELF)
    for t, p in samples:
        shelf.update(FrameTracks.of(t, {1: p} if p else {}, removed=() if p else (1,)))
    stats = shelf.take_window()
    return stats.interactions, stats.dwell.total_s


def _timeline(spans: list[tuple[float, float, tuple[float, float]]]) -> list:  # type: ignore[type-arg]
    return [(round(t * 0.1, 1), p) for a, b, p in spans for t in range(int(a * 10), int(b * 10))]


def test_long_visit_is_one_interaction_with_its_dwell() -> None:
    n, dwell = _run(_timeline([(0, 1, OUT), (1, 4, IN), (4, 5, OUT)]))
    assert n == 1 and dwell == pytest.approx(3.0)


def test_short_visit_is_no_interaction() -> None:
    assert _run(_timeline([(0, 1, OUT), (1, 2.5, IN), (2.5, 4, OUT)]))[0] == 0


def test_brief_step_out_keeps_one_visit_and_two_visits_count_twice() -> None:
    one = _timeline([(0, 1, IN), (1, 1.3, OUT), (1.3, 3, IN), (3, 4, OUT)])
    assert _run(one)[0] == 1
    two = _timeline([(0, 2.5, IN), (2.5, 4, OUT), (4, 6.5, IN), (6.5, 8, OUT)])
    assert _run(two)[0] == 2


def test_visit_ended_by_the_tracker_still_counts() -> None:
    samples = [*_timeline([(0, 3, IN)]), (3.0, None)]
    assert _run(samples)[0] == 1
