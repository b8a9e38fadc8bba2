"""The demo store: a rendered synthetic entrance video and the gateway config that watches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEMO_STORE = "demo-001"
DEMO_DEVICE = "demo-001-gw1"
DEMO_TIMEZONE = "Europe/Berlin"


def render_store_video(data_dir: Path, *, duration_s: float = 90.0) -> tuple[Path, dict[str, Any]]:
    """Render (once) the synthetic store entrance; returns the video and its camera geometry."""
    from edge.synthetic import store_scene

    scenario = store_scene(duration=duration_s)
    video = data_dir / f"store-scene-{int(duration_s)}s.avi"
    if not video.exists():
        tmp = video.with_suffix(".tmp.avi")
        scenario.scene.write_video(tmp)
        tmp.replace(video)
    return video, dict(scenario.camera)


def write_edge_config(
    data_dir: Path,
    *,
    camera: dict[str, Any],
    video: Path,
    detector: dict[str, Any],
    mqtt_host: str,
    mqtt_port: int,
    topic_prefix: str,
    window_s: int,
) -> Path:
    """Write the demo gateway's YAML config (validated by the agent when it starts)."""
    cam = {key: value for key, value in camera.items() if key != "source"}
    cam.update(source=str(video), loop=True, max_fps=15)
    config = {
        "device": {"device_id": DEMO_DEVICE, "store_id": DEMO_STORE, "timezone": DEMO_TIMEZONE},
        "cameras": [cam],
        "detector": detector,
        "window": {"length_s": window_s},
        "uplink": {
            "transport": "mqtt",
            "mqtt": {"host": mqtt_host, "port": mqtt_port, "topic_prefix": topic_prefix},
        },
        "outbox": {"path": str(data_dir / "outbox.db")},
        "health": {"interval_s": 10},
    }
    path = data_dir / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
