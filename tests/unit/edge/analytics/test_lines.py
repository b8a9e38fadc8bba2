"""Line counting: direction, hysteresis, crossing back, line ends, lines near the frame edge."""

from __future__ import annotations

import pytest

from edge.analytics import FrameTracks, LineCounter
from edge.config import LineConfig


def _count(line: LineConfig, path: list[tuple[float, float]], tid: int = 1) -> tuple[int, int]:
    counter = LineCounter(line)
    for i, p in enumerate(path):
        counter.update(FrameTracks.of(i * 0.1, {tid: p}))
    stats = counter.take_window()
    return stats.in_count, stats.out_count


HORIZONTAL = LineConfig(id="l", points=[(0.1, 0.5), (0.9, 0.5)], in_direction="right")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([(0.5, 0.3), (0.5, 0.45), (0.5, 0.55), (0.5, 0.7)], (1, 0)),  # down = right = in
        ([(0.5, 0.7), (0.5, 0.55), (0.5, 0.45), (0.5, 0.3)], (0, 1)),
        ([(0.5, 0.3), (0.5, 0.7), (0.5, 0.3)], (1, 1)),  # crossing back counts again
        ([(0.5, 0.3), (0.5, 0.7), (0.5, 0.3), (0.5, 0.7)], (2, 1)),
        ([(0.5, 0.3), (0.5, 0.49), (0.5, 0.51), (0.5, 0.49), (0.5, 0.51), (0.5, 0.3)], (0, 0)),
        ([(0.5, 0.3), (0.5, 0.51), (0.5, 0.49), (0.5, 0.515), (0.5, 0.6)], (1, 0)),
        ([(0.95, 0.3), (0.95, 0.7)], (0, 0)),  # passes beside the line's end
        ([(0.5, 0.5), (0.5, 0.7)], (0, 0)),  # first seen on the line: no side yet
    ],
)
def test_crossings(path: list[tuple[float, float]], expected: tuple[int, int]) -> None:
    assert _count(HORIZONTAL, path) == expected


def test_in_direction_left_swaps_in_and_out() -> None:
    line = HORIZONTAL.model_copy(update={"in_direction": "left"})
    assert _count(line, [(0.5, 0.3), (0.5, 0.7)]) == (0, 1)


def test_line_near_the_frame_edge_still_counts() -> None:
    # 0.01 from the bottom edge with a 0.05 hysteresis: the band shrinks to the room there
    line = LineConfig(id="edge", points=[(0.0, 0.99), (1.0, 0.99)], min_distance=0.05)
    assert _count(line, [(0.5, 0.8), (0.5, 0.97), (0.5, 0.996), (0.5, 1.0)]) == (0, 1)


def test_ended_tracks_are_forgotten() -> None:
    counter = LineCounter(HORIZONTAL)
    counter.update(FrameTracks.of(0.0, {1: (0.5, 0.3), 2: (0.4, 0.7)}))
    assert counter.tracked == 2
    counter.update(FrameTracks.of(0.1, {}, removed=(1, 2)))
    assert counter.tracked == 0
