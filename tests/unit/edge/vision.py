"""Helpers of the edge vision tests: shared assets, configs and synthetic scenario runners."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.analytics import CameraAnalytics, CameraWindow, FrameTracks
from edge.config import CameraConfig, EdgeConfig, TrackerConfig, parse_config
from edge.synthetic import Scenario, noisy_detections
from edge.track import ByteTracker

REPO = Path(__file__).resolve().parents[3]


def shared_path(*parts: str) -> Path:
    """A file under $MALLPULSE_SHARED (default <repo>/../shared); fails naming it if absent."""
    root = Path(os.environ.get("MALLPULSE_SHARED", REPO.parent / "shared"))
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared test asset missing: {path} (set MALLPULSE_SHARED)")
    return path


def edge_config(camera: dict[str, Any], **extra: Any) -> EdgeConfig:
    """A minimal valid EdgeConfig around one camera."""
    data: dict[str, Any] = {
        "device": {"device_id": "gw-test", "store_id": "store-test"},
        "cameras": [camera],
        "uplink": {"transport": "none"},
    }
    data.update(extra)
    return parse_config(data)


def run_truth(
    scenario: Scenario, *, seed: int = 0, jitter_px: float = 1.5, miss_rate: float = 0.0
) -> tuple[CameraWindow, CameraAnalytics]:
    """Ground-truth boxes plus noise -> ByteTracker -> analytics, one window over the scene."""
    scene = scenario.scene
    rng = np.random.default_rng(seed)
    tracker = ByteTracker(TrackerConfig(min_hits=3, lost_buffer_s=1.5))
    analytics = CameraAnalytics(CameraConfig.model_validate(scenario.camera))
    t = 0.0
    for t in scene.times.tolist():
        dets = noisy_detections(scene.boxes(t), rng, jitter_px=jitter_px, miss_rate=miss_rate)
        upd = tracker.update(dets, t)
        pts = {
            tr.id: (tr.anchor[0] / scene.width, tr.anchor[1] / scene.height) for tr in upd.tracks
        }
        analytics.update(FrameTracks.of(t, pts, tuple(upd.removed)))
    end = t + 1.0
    analytics.update(FrameTracks.of(end, {}, tuple(tracker.flush())))
    return analytics.take_window(0.0, end), analytics
