"""Manifests and build_detector: checksums, relative paths, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from edge.config import DetectorConfig
from edge.detect import (
    ModelFileError,
    ModelManifestError,
    MotionDetector,
    build_detector,
    load_manifest,
)
from edge.detect.manifest import file_sha256
from edge.detect.onnx import OnnxDetector
from tests.unit.edge.detect.onnx_models import constant_output_model
from tests.unit.edge.vision import REPO


def _write_manifest(folder: Path, model: Path, **overrides: object) -> Path:
    data: dict[str, object] = {
        "name": "tiny",
        "file": model.name,
        "sha256": file_sha256(model),
        "input_size": [64, 64],
        "output_format": "yolov8",
        "labels": ["person"],
        "licence": "test",
    }
    data.update(overrides)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_manifests_are_valid() -> None:
    for name in ("yolox_nano.yaml", "yunet.yaml"):
        manifest = load_manifest(REPO / "models" / name)
        assert len(manifest.sha256) == 64
    assert load_manifest(REPO / "models" / "yolox_nano.yaml").class_names[0] == "person"


def test_build_onnx_detector_with_paths_relative_to_the_config(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    model = constant_output_model(weights / "tiny.onnx", np.zeros((1, 5, 8), np.float32))
    _write_manifest(tmp_path, model)
    cfg = DetectorConfig(kind="onnx", manifest=Path("tiny.yaml"), models_dir=Path("weights"))
    det = build_detector(cfg, base_dir=tmp_path)
    assert isinstance(det, OnnxDetector)
    assert len(det.detect(np.zeros((48, 64, 3), np.uint8))) == 0


def test_sha256_mismatch_refuses_to_load(tmp_path: Path) -> None:
    model = constant_output_model(tmp_path / "tiny.onnx", np.zeros((1, 5, 8), np.float32))
    _write_manifest(tmp_path, model, sha256="a" * 64)
    cfg = DetectorConfig(kind="onnx", manifest=tmp_path / "tiny.yaml", models_dir=tmp_path)
    with pytest.raises(ModelFileError, match=r"has sha256 .* but the manifest says a{64}"):
        build_detector(cfg)


def test_missing_weights_and_bad_manifest_name_the_problem(tmp_path: Path) -> None:
    model = constant_output_model(tmp_path / "tiny.onnx", np.zeros((1, 5, 8), np.float32))
    _write_manifest(tmp_path, model, file="absent.onnx")
    cfg = DetectorConfig(kind="onnx", manifest=tmp_path / "tiny.yaml", models_dir=tmp_path)
    with pytest.raises(ModelFileError, match=r"absent\.onnx not found"):
        build_detector(cfg)
    _write_manifest(tmp_path, model, output_format="ssd")
    with pytest.raises(ModelManifestError, match="output_format"):
        build_detector(cfg)
    with pytest.raises(ModelManifestError, match="cannot read"):
        build_detector(DetectorConfig(kind="onnx", manifest=tmp_path / "nope.yaml"))


def test_motion_kind_needs_no_weights() -> None:
    assert isinstance(build_detector(DetectorConfig(kind="motion")), MotionDetector)
