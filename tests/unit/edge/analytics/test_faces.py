"""Face alignment on dlib's mean face, the quality gate, and the shipped age/gender networks."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.analytics.age_gender import DlibAgeGender
from edge.analytics.faces import (
    MEAN_FACE,
    QualityGate,
    Rejection,
    aligned_chip,
    chip_transform,
    pose_out_of_range,
)
from edge.config.files import manifests_dir
from edge.detect import ModelFormatError

MANIFEST = manifests_dir() / "dlib_age_gender.yaml"


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.radians(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, np.array(shift)[:, None]])


def _face_points(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    m = _similarity(angle, scale, shift)
    return (MEAN_FACE @ m[:, :2].T + m[:, 2]).astype(np.float32)


@pytest.mark.parametrize(
    ("angle", "scale", "shift"),
    [(0.0, 100.0, (50.0, 40.0)), (20.0, 60.0, (300.0, 10.0)), (-35.0, 250.0, (5.0, 400.0))],
)
def test_chip_transform_puts_the_landmarks_on_the_mean_face(
    angle: float, scale: float, shift: tuple[float, float]
) -> None:
    points = _face_points(angle, scale, shift)
    m = chip_transform(points, 64, 0.2)
    mapped = points @ m[:, :2].T + m[:, 2]
    assert mapped == pytest.approx((MEAN_FACE + 0.2) / 1.4 * 64, abs=1e-3)


def test_aligned_chip_samples_the_face_upright() -> None:
    # a dark disc at the nose tip of a face rotated by 30 degrees lands at the chip's nose tip
    points = _face_points(30.0, 120.0, (200.0, 150.0))
    image = np.full((500, 500, 3), 255, np.uint8)
    nose = tuple(int(v) for v in points[2])
    cv2.circle(image, nose, 6, (0, 0, 0), -1)
    chip = aligned_chip(image, points, 64, 0.2)
    y, x = np.unravel_index(int(chip[..., 0].argmin()), chip.shape[:2])
    expect = (MEAN_FACE[2] + 0.2) / 1.4 * 64
    assert abs(x - expect[0]) <= 2 and abs(y - expect[1]) <= 2
    assert chip.shape == (64, 64, 3) and chip.dtype == np.uint8


@pytest.mark.parametrize(
    ("angle", "nose_shift", "out"),
    [
        (0.0, 0.0, False),  # frontal
        (20.0, 0.0, False),  # tilted within the limit
        (40.0, 0.0, True),  # tilted too far
        (0.0, 0.2, False),  # turned a little
        (0.0, 0.5, True),  # turned too far (nose half an eye distance aside)
    ],
)
def test_pose_limits(angle: float, nose_shift: float, out: bool) -> None:
    points = _face_points(angle, 100.0, (0.0, 0.0)).copy()
    eyes = points[1] - points[0]
    points[2] += nose_shift * eyes
    assert pose_out_of_range(points, max_yaw=0.35, max_roll=25.0) is out


def _row(x: float, y: float, size: float, points: np.ndarray | None) -> np.ndarray:
    head = [x, y, size, size, 0.9]
    return np.array(head + ([] if points is None else points.ravel().tolist()), np.float32)


def _textured(size: int = 300) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 255, (size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("ok", None),
        ("small", Rejection.SMALL),
        ("no_landmarks", Rejection.NO_LANDMARKS),
        ("turned", Rejection.POSE),
        ("flat", Rejection.BLUR),
    ],
)
def test_quality_gate(case: str, expected: Rejection | None) -> None:
    points = _face_points(0.0, 60.0, (100.0, 100.0))
    image = _textured()
    row = _row(90, 90, 80, points)
    if case == "small":
        row = _row(90, 90, 20, points)
    elif case == "no_landmarks":
        row = _row(90, 90, 80, None)
    elif case == "turned":
        shifted = points.copy()
        shifted[2] += 0.6 * (points[1] - points[0])
        row = _row(90, 90, 80, shifted)
    elif case == "flat":
        image = np.full((300, 300, 3), 128, np.uint8)
    assert QualityGate().check(image, row) == expected


def test_shipped_networks_load_and_give_probabilities() -> None:
    model = DlibAgeGender(MANIFEST)
    points = _face_points(0.0, 60.0, (100.0, 100.0))
    female, male, age = model.estimate(_textured(), _row(90, 90, 80, points))
    assert female + male == pytest.approx(1.0, abs=1e-4)
    assert 0.0 <= age <= 80.0
    with pytest.raises(ValueError, match="landmarks"):
        model.estimate(_textured(), _row(90, 90, 80, None))


def test_weights_that_differ_from_the_manifest_are_refused(tmp_path: Path) -> None:
    for name in ("dlib_age_gender.yaml", "dlib_age_v1.onnx", "dlib_gender_v1.onnx"):
        shutil.copy(manifests_dir() / name, tmp_path / name)
    with (tmp_path / "dlib_gender_v1.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelFormatError, match=r"sha256 differs .*gender\.sha256"):
        DlibAgeGender(tmp_path / "dlib_age_gender.yaml")
    (tmp_path / "bad.yaml").write_text("format: something-else\n")
    with pytest.raises(ModelFormatError, match="format must be"):
        DlibAgeGender(tmp_path / "bad.yaml")
