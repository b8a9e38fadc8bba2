"""models/export.py: manifests from ONNX graphs, and a clear message without ultralytics."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest

from edge.detect import load_manifest
from edge.detect.onnx import OnnxDetector
from tests.unit.edge.detect.onnx_models import constant_output_model

SCRIPT = Path(__file__).resolve().parents[3] / "models" / "export.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_script", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _yolov8_like(path: Path, classes: int = 2) -> Path:
    constant_output_model(path, np.zeros((1, 4 + classes, 84), np.float32))
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "names", "{0: 'person', 1: 'cart'}"
    onnx.save(model, str(path))
    return path


def test_manifest_only_writes_a_loadable_manifest(tmp_path: Path) -> None:
    onnx_path = _yolov8_like(tmp_path / "tiny.onnx")
    out = tmp_path / "tiny.yaml"
    assert _module().main([str(onnx_path), "--manifest-only", "--manifest", str(out)]) == 0
    manifest = load_manifest(out)
    assert manifest.output_format == "yolov8" and manifest.input_size == (64, 64)
    assert manifest.class_names == ("person", "cart")
    assert manifest.input_layout == "rgb_0_1"
    OnnxDetector(manifest, onnx_path)  # the gateway accepts what the script describes


def test_yolox_layout_and_coco_labels(tmp_path: Path) -> None:
    path = constant_output_model(tmp_path / "x.onnx", np.zeros((1, 200, 85), np.float32))
    m = _module().describe(path, name="x", licence="Apache-2.0", source="test")
    assert (m["output_format"], m["labels"]) == ("yolox", "coco80")


def test_label_count_mismatch_and_bad_files(tmp_path: Path) -> None:
    mod = _module()
    path = _yolov8_like(tmp_path / "tiny.onnx")
    with pytest.raises(mod.ExportError, match="3 labels for a model with 2 classes"):
        mod.describe(path, name="t", licence="l", source="s", labels=["a", "b", "c"])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"nope")
    assert mod.main([str(junk), "--manifest-only", "--manifest", str(tmp_path / "j.yaml")]) == 2


def test_export_without_ultralytics_says_how_to_install(tmp_path: Path) -> None:
    if importlib.util.find_spec("ultralytics") is not None:
        pytest.skip("ultralytics is installed here; the message is for gateways without it")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "yolo11n.pt", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "mallpulse[export]" in result.stderr


def test_help_works_without_ultralytics() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "--manifest-only" in result.stdout
