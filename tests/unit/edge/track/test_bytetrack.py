"""ByteTracker: confirmation, stable ids through occlusion, low-score rescue, flat memory."""

from __future__ import annotations

import numpy as np

from edge.config import TrackerConfig
from edge.detect import Detections
from edge.track import ByteTracker, iou_matrix


def _box(x: float, y: float = 100.0, w: float = 30.0, h: float = 80.0) -> list[float]:
    return [x, y, x + w, y + h]


def _dets(boxes: list[list[float]], score: float = 0.9) -> Detections:
    return Detections.from_arrays(np.array(boxes).reshape(-1, 4), [score] * len(boxes))


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150], [0.0, 0.0]])


def test_track_confirmed_after_min_hits() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=3))
    seen = [len(tracker.update(_dets([_box(10 + 3 * i)]), i / 10).tracks) for i in range(4)]
    assert seen == [0, 0, 1, 1]


def test_single_false_positive_never_becomes_a_track() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=2))
    tracker.update(_dets([_box(50)]), 0.0)
    out = tracker.update(_dets([]), 0.1)
    assert out.tracks == [] and out.removed == [] and len(tracker) == 0


def test_id_survives_a_short_occlusion_and_ends_after_the_buffer() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=2, lost_buffer_s=1.0))
    ids = set()
    for i in range(30):
        t, x = i / 10, 10 + 4 * i
        hidden = 10 <= i < 16  # 0.6 s behind a pillar, still moving
        out = tracker.update(_dets([] if hidden else [_box(x)]), t)
        ids |= {tr.id for tr in out.tracks}
    assert len(ids) == 1
    (tid,) = ids
    removed: list[int] = []
    for i in range(30, 50):
        removed += tracker.update(_dets([]), i / 10).removed
    assert removed == [tid] and len(tracker) == 0


def test_low_score_detections_keep_an_occluded_track() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=1, high_threshold=0.5, low_threshold=0.1))
    first = tracker.update(_dets([_box(10)]), 0.0).tracks[0].id
    for i in range(1, 10):
        out = tracker.update(_dets([_box(10 + 2 * i)], score=0.3), i / 10)
        assert [tr.id for tr in out.tracks] == [first]


def test_two_people_passing_keep_their_ids() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=1))
    first: list[int] = []
    for i in range(40):
        a, b = _box(10 + 5 * i, y=100), _box(210 - 5 * i, y=130)
        out = tracker.update(_dets([a, b]), i / 10)
        by_x = {round(tr.x1): tr.id for tr in out.tracks}
        ids = [by_x[k] for k in sorted(by_x)]
        if not first:
            first = ids
        if 10 + 5 * i < 210 - 5 * i - 40:  # well before they meet, left is person a
            assert ids == first
    last = {tr.id: tr.x1 for tr in out.tracks}
    assert last[first[0]] > last[first[1]]  # a ended on the right: ids followed the people


def test_memory_stays_flat_over_many_people() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=2, lost_buffer_s=0.5))
    rng = np.random.default_rng(0)
    sizes = []
    people: dict[int, float] = {}
    for i in range(3000):
        if rng.random() < 0.2:
            people[i] = float(rng.uniform(0, 500))
        boxes = [_box(x + 2 * (i - s), y=100 + (s % 7) * 40) for s, x in people.items()]
        people = {s: x for s, x in people.items() if i - s < 40}
        tracker.update(_dets(boxes), i / 10)
        sizes.append(len(tracker))
    assert max(sizes[-1000:]) <= max(sizes[:1000]) + 5
    assert max(sizes) < 40
