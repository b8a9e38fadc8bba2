"""Demographics: the age/gender contract, sampling rate, one majority vote per track."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.analytics.demographics import DemographicsStage, OnnxAgeGender, age_band
from edge.detect import ModelFormatError
from edge.track import Track
from protos.mallpulse.v1 import telemetry_pb2 as pb
from tests.unit.edge.detect.onnx_models import age_gender_model


class _WholeCropFace:
    """Pretends the upper person crop is one face (the real YuNet is tested on real video)."""

    def faces(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return np.array([[0, 0, w, h, 0.9]], np.float32)


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (5, pb.AGE_BAND_0_17),
        (18, pb.AGE_BAND_18_24),
        (34.9, pb.AGE_BAND_25_34),
        (64, pb.AGE_BAND_55_64),
        (80, pb.AGE_BAND_65_PLUS),
    ],
)
def test_age_bands(age: float, band: int) -> None:
    assert age_band(age) == band


def test_contract_model_estimates(tmp_path: Path) -> None:
    model = OnnxAgeGender(age_gender_model(tmp_path / "ga.onnx"))
    image = np.zeros((60, 60, 3), np.uint8)
    image[10:50, 20:50] = 255
    row = np.array([20, 10, 30, 40, 0.9], np.float32)  # a box without landmarks
    female, male, age = model.estimate(image, row)
    assert (female, male, age) == pytest.approx((1.0, 0.0, 80.0), abs=1e-4)


def test_model_breaking_the_contract_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"contract is \[1, 3\]"):
        OnnxAgeGender(age_gender_model(tmp_path / "two.onnx", outputs=2))


def _frame(bright: int) -> np.ndarray:
    return np.full((200, 200, 3), bright, np.uint8)


def test_one_majority_vote_per_track(tmp_path: Path) -> None:
    stage = DemographicsStage(
        _WholeCropFace(),
        OnnxAgeGender(age_gender_model(tmp_path / "g.onnx")),
        sample_every_s=0.5,
        max_samples=3,
    )
    a, b = Track(1, 10, 10, 90, 190, 0.9), Track(2, 100, 10, 180, 190, 0.9)
    # track 1: bright (female, 80 * 0.86 ~ 69) twice, dark once -> female 65+;
    # track 2: dark -> male, age 80 * 0.16 ~ 12
    brightness = [220, 40, 220, 220, 220, 220]
    for i, level in enumerate(brightness):
        frame = _frame(level)
        frame[:, 100:] = 40
        stage.update(frame, [a, b], i * 0.25, [])
    assert stage.take_window() == {}  # nobody has left yet
    stage.update(_frame(0), [], 2.0, [1, 2])
    assert stage.take_window() == {
        (pb.AGE_BAND_0_17, pb.GENDER_MALE): 1,
        (pb.AGE_BAND_65_PLUS, pb.GENDER_FEMALE): 1,
    }
    assert stage.tracked == 0


def test_without_an_age_gender_model_faces_count_as_unknown() -> None:
    stage = DemographicsStage(_WholeCropFace(), None)
    stage.update(_frame(100), [Track(5, 0, 0, 100, 150, 0.9)], 0.0, [])
    stage.end_all()
    assert stage.take_window() == {(pb.AGE_BAND_UNSPECIFIED, pb.GENDER_UNKNOWN): 1}


def test_sampling_rate_and_sample_cap(tmp_path: Path) -> None:
    calls = []

    class Counting(_WholeCropFace):
        def faces(self, image: np.ndarray) -> np.ndarray:
            calls.append(1)
            return super().faces(image)

    stage = DemographicsStage(Counting(), None, sample_every_s=1.0, max_samples=2)
    for i in range(50):  # 5 s at 10 fps
        stage.update(_frame(100), [Track(1, 0, 0, 100, 150, 0.9)], i / 10, [])
    assert len(calls) == 2
