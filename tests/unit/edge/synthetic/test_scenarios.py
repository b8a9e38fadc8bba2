"""Exact counts on synthetic scenes: ground truth + noise through the tracker, and motion."""

from __future__ import annotations

import pytest

from edge.detect import MotionDetector
from edge.pipeline import CameraPipeline
from edge.synthetic import (
    Scenario,
    line_scenario,
    store_scene,
    walkthrough_scenario,
    zone_scenario,
)
from tests.unit.edge.vision import edge_config, run_truth


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("miss_rate", [0.0, 0.05])
def test_line_counts_are_exact_with_noisy_truth(seed: int, miss_rate: float) -> None:
    scenario = line_scenario()
    window, analytics = run_truth(scenario, seed=seed, miss_rate=miss_rate)
    (door,) = window.lines
    assert (door.in_count, door.out_count) == scenario.expected["door"]
    assert analytics.tracked == 0  # every per-track state was released


def test_two_people_crossing_together_count_twice() -> None:
    scenario = line_scenario()
    together = [w for w in scenario.scene.walkers if w.id in (3, 4)]
    scenario.scene.walkers = together
    window, _ = run_truth(scenario, seed=4)
    assert (window.lines[0].in_count, window.lines[0].out_count) == (2, 0)


def test_jitter_on_the_line_never_counts() -> None:
    scenario = line_scenario()
    scenario.scene.walkers = [w for w in scenario.scene.walkers if w.id == 6]
    window, _ = run_truth(scenario, seed=5, jitter_px=3.0)
    assert (window.lines[0].in_count, window.lines[0].out_count) == (0, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zone_entries_exits_and_dwell_within_one_frame(seed: int) -> None:
    scenario = zone_scenario()
    window, _ = run_truth(scenario, seed=seed, miss_rate=0.05)
    (zone,) = window.zones
    assert (zone.entries, zone.exits) == (2, 2)
    truth = scenario.scene.true_visits(1, scenario.camera["zones"][0]["polygon"])
    assert len(truth) == 2
    frame = 1.0 / scenario.scene.fps
    true_total = sum(b - a for a, b in truth)
    assert abs(zone.dwell.total_s - true_total) <= len(truth) * frame + 1e-9
    assert zone.occupancy_at_end == 0 and zone.max_occupancy == 1
    span = scenario.scene.times[-1] + 1.0  # run_truth's window is [0, last frame + 1 s)
    assert abs(zone.avg_occupancy * span - true_total) <= len(truth) * frame + 1e-9


@pytest.mark.parametrize("seed", [0, 3])
def test_one_shelf_interaction_per_visit(seed: int) -> None:
    scenario = zone_scenario()
    window, _ = run_truth(scenario, seed=seed, miss_rate=0.05)
    (shelf,) = window.shelves
    assert shelf.interactions == scenario.expected["coffee"]
    polygon = scenario.camera["shelves"][0]["polygon"]
    visits = scenario.scene.true_visits(2, polygon)
    passer = scenario.scene.true_visits(3, polygon)
    assert len(visits) == 2 and all(b - a < 2.0 for a, b in passer)  # the passer-by never counts
    frame = 1.0 / scenario.scene.fps
    assert abs(shelf.dwell.total_s - sum(b - a for a, b in visits)) <= 2 * frame + 1e-9


def _run_motion(scenario: Scenario) -> tuple[int, int]:
    cfg = edge_config(scenario.camera, window={"length_s": 3600})
    pipeline = CameraPipeline(cfg, scenario.camera["id"], MotionDetector())
    envelopes = []
    t0 = 1_767_225_600.0
    for frame, t in scenario.scene.frames():
        envelopes += pipeline.process(frame, t0 + t)
    envelopes += pipeline.flush(t0 + scenario.scene.duration)
    lines = [line for env in envelopes for line in env.window.lines]
    return sum(x.in_count for x in lines), sum(x.out_count for x in lines)


@pytest.mark.parametrize("build", [walkthrough_scenario, store_scene])
def test_motion_detector_pipeline_counts_exactly(build: object) -> None:
    scenario = build()  # type: ignore[operator]
    assert _run_motion(scenario) == scenario.expected["door"]
