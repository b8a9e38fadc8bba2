"""Synthetic store scenes with exact ground truth, for tests, benchmarks and `mallpulse demo`."""

from edge.synthetic.scenarios import (
    Scenario,
    line_scenario,
    store_scene,
    walkthrough_scenario,
    zone_scenario,
)
from edge.synthetic.scene import Scene, Walker, noisy_detections

__all__ = [
    "Scenario",
    "Scene",
    "Walker",
    "line_scenario",
    "noisy_detections",
    "store_scene",
    "walkthrough_scenario",
    "zone_scenario",
]
