"""`mallpulse edge replay` outputs: folders created, clean errors, the annotated video's frame
rate, the JSONL's fields and types, and the totals in the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml
from typer.testing import CliRunner

from edge.synthetic import walkthrough_scenario
from mallpulse.cli import app


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(video, config) of the synthetic walkthrough with the motion detector."""
    folder = tmp_path_factory.mktemp("scene")
    scenario = walkthrough_scenario()
    video = scenario.scene.write_video(folder / "scene.avi")
    camera = scenario.camera | {"source": str(video), "max_fps": 30}
    config = folder / "device.yaml"
    config.write_text(yaml.safe_dump({
        "device": {"device_id": "gw-1", "store_id": "s-1"}, "cameras": [camera],
        "detector": {"kind": "motion"}, "window": {"length_s": 10},
        "uplink": {"transport": "none"},
    }))  # fmt: skip
    return Path(video), config


def _replay(scene: tuple[Path, Path], *args: str) -> Any:
    video, config = scene
    return CliRunner().invoke(app, ["edge", "replay", str(video), "--config", str(config), *args])


def test_out_and_annotate_into_missing_folders_are_created(
    scene: tuple[Path, Path], tmp_path: Path
) -> None:
    out, video = tmp_path / "a" / "b" / "o.jsonl", tmp_path / "c" / "v.mp4"
    res = _replay(scene, "--out", str(out), "--annotate", str(video), "--max-fps", "5")
    assert res.exit_code == 0, res.output
    assert out.read_text().count("\n") == 3 and video.stat().st_size > 0


def test_out_where_no_folder_can_be_made_is_a_clear_error(
    scene: tuple[Path, Path], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    res = _replay(scene, "--out", str(tmp_path / "file" / "o.jsonl"))
    assert res.exit_code == 2
    assert res.output.startswith(f"error: cannot create the folder {tmp_path / 'file'}")
    assert "Traceback" not in res.output


def test_unknown_camera_error_has_no_stray_quotes(scene: tuple[Path, Path], tmp_path: Path) -> None:
    res = _replay(scene, "--out", str(tmp_path / "o.jsonl"), "--camera", "nope")
    assert res.exit_code == 2
    assert res.output.startswith("error: no camera 'nope'; known: ["), res.output


def test_annotated_video_plays_at_the_processed_rate(
    scene: tuple[Path, Path], tmp_path: Path
) -> None:
    source = cv2.VideoCapture(str(scene[0]))
    source_fps, source_frames = source.get(cv2.CAP_PROP_FPS), source.get(cv2.CAP_PROP_FRAME_COUNT)
    source.release()
    assert source_fps > 5
    video = tmp_path / "v.mp4"
    res = _replay(scene, "--out", str(tmp_path / "o.jsonl"), "--annotate", str(video),
                  "--max-fps", "5")  # fmt: skip
    assert res.exit_code == 0, res.output
    cap = cv2.VideoCapture(str(video))
    fps, frames = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    assert fps == pytest.approx(5.0)
    # same duration as the source: it neither plays faster nor slower
    assert frames / fps == pytest.approx(source_frames / source_fps, rel=0.05)


def test_jsonl_keeps_zero_fields_and_integers_and_the_summary_has_totals(
    scene: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "o.jsonl"
    res = _replay(scene, "--out", str(out))
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["sequence"] for r in rows] == [1, 2, 3]  # numbers, not strings
    for row in rows:
        window = row["window"]
        assert isinstance(window["frames_processed"], int)
        for key in ("lines", "zones", "queues", "shelves"):
            assert key in window  # empty lists are written too
        for line in window["lines"]:
            assert {"line_id", "in_count", "out_count"} <= set(line)
    summary = json.loads(res.stdout)
    totals = summary["totals"]
    ins = sum(x["in_count"] for r in rows for x in r["window"]["lines"])
    outs = sum(x["out_count"] for r in rows for x in r["window"]["lines"])
    assert (totals["in"], totals["out"]) == (ins, outs) == (4, 2)
    assert set(totals["lines"]) == {x["line_id"] for r in rows for x in r["window"]["lines"]}
