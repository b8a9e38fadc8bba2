"""Emotion: the model contract, valence from expression labels, one vote per person and zone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.analytics.demographics import DemographicsStage
from edge.analytics.emotion import FER2013_LABELS, OnnxEmotion
from edge.analytics.geometry import polygon_edges
from edge.detect import ModelFormatError
from edge.track import Track
from protos.mallpulse.v1 import telemetry_pb2 as pb
from tests.unit.edge.detect.onnx_models import emotion_model


class _WholeCropFace:
    """Pretends the upper person crop is one face (YuNet itself is tested on real video)."""

    def faces(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return np.array([[0, 0, w, h, 0.9]], np.float32)


@pytest.mark.parametrize(
    ("level", "expected"),
    [(230, pb.VALENCE_POSITIVE), (20, pb.VALENCE_NEGATIVE), (128, pb.VALENCE_NEUTRAL)],
)
def test_valence_from_the_expression_scores(tmp_path: Path, level: int, expected: int) -> None:
    model = OnnxEmotion(emotion_model(tmp_path / "e.onnx"))
    image = np.full((80, 80, 3), level, np.uint8)
    p = model.valence(image, np.array([10, 10, 60, 60, 0.9], np.float32))
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    order = (pb.VALENCE_POSITIVE, pb.VALENCE_NEUTRAL, pb.VALENCE_NEGATIVE)
    assert order[int(p.argmax())] == expected


def test_models_breaking_the_contract_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"contract is \[N, 7\]"):
        OnnxEmotion(emotion_model(tmp_path / "five.onnx", labels=5))
    with pytest.raises(ModelFormatError, match="have no valence"):
        OnnxEmotion(emotion_model(tmp_path / "e.onnx"), (*FER2013_LABELS[:6], "bored"))


def test_one_vote_per_person_and_zone(tmp_path: Path) -> None:
    left = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
    stage = DemographicsStage(
        _WholeCropFace(),
        None,
        emotion=OnnxEmotion(emotion_model(tmp_path / "e.onnx")),
        zones={"left": polygon_edges(left)},
        sample_every_s=0.5,
        max_samples=4,
    )
    a = Track(1, 10, 10, 90, 190, 0.9)  # feet in the left zone
    b = Track(2, 110, 10, 190, 190, 0.9)  # feet outside every zone
    for i in range(8):
        frame = np.full((200, 200, 3), 230, np.uint8)  # a: bright, smiling
        frame[:, 100:] = 20 if i != 3 else 230  # b: dark, once bright: outvoted
        stage.update(frame, [a, b], i * 0.5, [])
    stage.update(np.zeros((200, 200, 3), np.uint8), [], 5.0, [1, 2])
    assert stage.take_emotions() == {
        ("left", pb.VALENCE_POSITIVE): 1,
        ("", pb.VALENCE_NEGATIVE): 1,
    }
    assert stage.take_emotions() == {}  # counting restarts with each window
    # no age/gender model: the faces still count as unspecified people
    assert stage.take_window() == {(pb.AGE_BAND_UNSPECIFIED, pb.GENDER_UNKNOWN): 2}
