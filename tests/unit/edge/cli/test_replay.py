"""`mallpulse edge replay` on a rendered synthetic video with the motion detector."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import yaml
from typer.testing import CliRunner

from edge.synthetic import walkthrough_scenario
from mallpulse.cli import app


def _write_scene(path: Path) -> dict:  # type: ignore[type-arg]
    scenario = walkthrough_scenario()
    scenario.scene.write_video(path)
    return scenario.camera | {"source": str(path), "max_fps": 30}


def test_replay_writes_window_aggregates_and_an_annotated_video(tmp_path: Path) -> None:
    camera = _write_scene(tmp_path / "scene.avi")
    config = tmp_path / "device.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"device_id": "gw-1", "store_id": "s-1"},
                "cameras": [camera],
                "detector": {"kind": "motion"},
                "window": {"length_s": 10},
                "uplink": {"transport": "none"},
            }
        )
    )
    out, video = tmp_path / "agg.jsonl", tmp_path / "annotated.mp4"
    result = CliRunner().invoke(
        app,
        [
            "edge",
            "replay",
            str(tmp_path / "scene.avi"),
            "--config",
            str(config),
            "--out",
            str(out),
            "--annotate",
            str(video),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [int(r["sequence"]) for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) == 3  # 0-10 s, 10-20 s, and the partial last window
    lines = [x for r in rows for x in r["window"].get("lines", [])]
    assert sum(x.get("in_count", 0) for x in lines) == 4
    assert sum(x.get("out_count", 0) for x in lines) == 2
    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    assert (
        ok
        and frame.shape == (360, 640, 3)
        and frames == sum(r["window"].get("frames_processed", 0) for r in rows)
    )


def test_replay_of_an_unreadable_video_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    config = tmp_path / "device.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"device_id": "gw-1", "store_id": "s-1"},
                "cameras": [{"id": "c", "source": str(bad)}],
                "detector": {"kind": "motion"},
            }
        )
    )
    result = CliRunner().invoke(
        app,
        ["edge", "replay", str(bad), "--config", str(config), "--out", str(tmp_path / "o.jsonl")],
    )
    assert result.exit_code == 2
    assert "bad.mp4" in result.output


def test_replay_help() -> None:
    result = CliRunner().invoke(app, ["edge", "replay", "--help"])
    assert result.exit_code == 0 and "--annotate" in result.output


def test_replay_refuses_weights_that_do_not_match_the_manifest(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "yolox_nano.onnx").write_bytes(b"tampered")
    video = walkthrough_scenario().scene.write_video(tmp_path / "v.avi")
    config = tmp_path / "device.yaml"
    manifest = Path(__file__).resolve().parents[4] / "models" / "yolox_nano.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"device_id": "gw-1", "store_id": "s-1"},
                "cameras": [{"id": "c", "source": str(video)}],
                "detector": {"kind": "onnx", "manifest": str(manifest), "models_dir": "weights"},
            }
        )
    )
    result = CliRunner().invoke(
        app, ["edge", "replay", str(video), "--config", str(config), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "refusing to load it" in result.output and "yolox_nano.onnx" in result.output
