"""Files a device config refers to: `config validate` checks them, and model files follow one
rule (relative to the models folder) with errors naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from edge.config import ConfigError, load_config
from edge.config.files import demographics_models
from edge.pipeline import build_demographics
from mallpulse.cli import app
from tests.unit.edge.detect.onnx_models import age_gender_model
from tests.unit.edge.vision import shared_path

REPO = Path(__file__).resolve().parents[4]
MANIFEST = REPO / "models" / "yolox_nano.yaml"
YUNET = "face_detection_yunet_2026may.onnx"


def _config(folder: Path, **extra: Any) -> Path:
    doc = {
        "device": {"device_id": "gw-1", "store_id": "s-1"},
        "cameras": [{"id": "c", "source": "video.mp4"}],
        **extra,
    }
    path = folder / "device.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _validate(path: Path) -> Any:
    return CliRunner().invoke(app, ["config", "validate", str(path)])


def test_validate_refuses_a_wrong_manifest_path(tmp_path: Path) -> None:
    path = _config(tmp_path, detector={"kind": "onnx", "manifest": "nowhere/yolox_nano.yaml"})
    res = _validate(path)
    assert res.exit_code == 2, res.output
    assert f"INVALID {path}: detector.manifest: " in res.output
    assert "nowhere/yolox_nano.yaml" in res.output


def test_validate_refuses_missing_weights(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    detector = {"kind": "onnx", "manifest": str(MANIFEST), "models_dir": "weights"}
    res = _validate(_config(tmp_path, detector=detector))
    assert res.exit_code == 2, res.output
    assert "detector.models_dir: model 'yolox_nano': weights file" in res.output


@pytest.mark.parametrize("field", ["face_model", "age_gender_model"])
def test_validate_refuses_missing_demographics_models(tmp_path: Path, field: str) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / YUNET).symlink_to(shared_path("models", YUNET))
    age_gender_model(models / "ga.onnx")
    demo = {"enabled": True, "face_model": YUNET, "age_gender_model": "ga.onnx", field: "gone.onnx"}
    path = _config(tmp_path, detector={"kind": "motion", "models_dir": "models"}, demographics=demo)
    res = _validate(path)
    assert res.exit_code == 2, res.output
    assert (
        f"{path}: demographics.{field}: model file {models / 'gone.onnx'} not found" in res.output
    )


def test_validate_accepts_the_files_and_counts_in_the_singular(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / YUNET).symlink_to(shared_path("models", YUNET))
    age_gender_model(models / "ga.onnx")
    demo = {"enabled": True, "age_gender_model": "ga.onnx"}
    path = _config(tmp_path, detector={"kind": "motion", "models_dir": "models"}, demographics=demo)
    res = _validate(path)
    assert res.exit_code == 0, res.output
    assert "1 camera, 0 lines, 0 zones, 0 shelves" in res.output


def test_age_gender_model_is_read_from_the_models_folder_like_the_face_model(
    tmp_path: Path,
) -> None:
    models, configs = tmp_path / "models", tmp_path / "configs"
    models.mkdir()
    configs.mkdir()
    (models / YUNET).symlink_to(shared_path("models", YUNET))
    age_gender_model(models / "ga.onnx")
    demo = {"enabled": True, "age_gender_model": "ga.onnx"}
    path = _config(configs, detector={"kind": "motion", "models_dir": "../models"},
                   demographics=demo)  # fmt: skip
    cfg = load_config(path)
    face, gender = demographics_models(cfg, configs)
    assert (face.resolve(), gender and gender.resolve()) == (
        (models / YUNET).resolve(),
        (models / "ga.onnx").resolve(),
    )
    stage = build_demographics(cfg, base_dir=configs)
    assert stage is not None and stage.estimator is not None


def test_a_missing_model_at_run_time_names_the_field(tmp_path: Path) -> None:
    demo = {"enabled": True, "face_model": "nope.onnx"}
    cfg = load_config(_config(tmp_path, detector={"kind": "motion", "models_dir": str(tmp_path)},
                              demographics=demo))  # fmt: skip
    with pytest.raises(ConfigError, match=r"demographics\.face_model: model file .*nope\.onnx"):
        build_demographics(cfg, base_dir=tmp_path)
