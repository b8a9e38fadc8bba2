"""Face geometry for the demographics stage: YuNet's rows, alignment to dlib's mean face, and the
quality gate that decides whether a face is good enough to estimate age and gender from.

A face row is float32 `[x, y, w, h, score, rx, ry, lx, ly, nx, ny, mrx, mry, mlx, mly]` in the
pixels of the image it was found on: the box, the detector's score, then YuNet's five landmarks
(the person's right eye, left eye, nose tip, right and left mouth corners). A row of only the
first five columns has no landmarks: it can be cropped but not aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import numpy.typing as npt

from edge.detect.types import Frame

FaceRow = npt.NDArray[np.float32]
BOX_COLUMNS = 5
ROW_COLUMNS = 15

# dlib's mean face (dlib/image_transforms/interpolation.h, get_face_chip_details), in the unit
# square of the chip before padding. Eyes: the centres of dlib's 5-point eye corners (points 0-1
# and 2-3); nose tip and mouth corners: its 68-point mean shape (points 30, 48 and 54). Order as
# YuNet's landmarks: the person's right eye (left in the image), left eye, nose tip, right and
# left mouth corners.
MEAN_FACE = np.array(
    [
        [(0.1205750620789 + 0.3340850613712) / 2, (0.2137274526848 + 0.2290642403242) / 2],
        [(0.8595674595992 + 0.6460604764104) / 2, (0.2134981538014 + 0.2289674387677) / 2],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ],
    np.float32,
)


def landmarks(row: FaceRow) -> npt.NDArray[np.float32] | None:
    """The (5, 2) landmarks of a face row, or None for a row without them."""
    if row.shape[0] < ROW_COLUMNS:
        return None
    return np.asarray(row[BOX_COLUMNS:ROW_COLUMNS], np.float32).reshape(5, 2)


def chip_transform(
    points: npt.NDArray[np.float32], size: int, padding: float
) -> npt.NDArray[np.float64]:
    """The 2x3 similarity (rotation, uniform scale, shift) taking the image to a `size` chip
    where the landmarks land on dlib's mean face with `padding` (dlib's convention: the unit
    face square grows by `padding` on each side)."""
    target = (MEAN_FACE + padding) / (1 + 2 * padding) * size
    matrix, _ = cv2.estimateAffinePartial2D(points, target, method=cv2.LMEDS)
    if matrix is None:  # degenerate landmarks (all on one point): fall back on the eyes
        matrix = cv2.getAffineTransform(
            points[[0, 1, 2]].astype(np.float32), target[[0, 1, 2]].astype(np.float32)
        )
    return np.asarray(matrix, np.float64)


def aligned_chip(image: Frame, points: npt.NDArray[np.float32], size: int, padding: float) -> Frame:
    """The face as a `size` x `size` chip aligned on its landmarks (same channels as `image`).

    A chip much smaller than the face is taken from a downscaled copy first (area averaging), as
    dlib's extract_image_chip does with its pyramid, so small chips are not aliased."""
    matrix = chip_transform(points, size, padding)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))  # chip pixels per image pixel
    source: Frame = image
    if scale < 0.5:
        factor = 2 * scale
        source = np.asarray(
            cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA), np.uint8
        )
        matrix = matrix.copy()
        matrix[:, :2] /= factor
    chip = cv2.warpAffine(
        source, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(chip, np.uint8)


class Rejection(StrEnum):
    """Why a face was not used for age and gender."""

    SMALL = "small"  # fewer pixels between the eyes than the models can use
    POSE = "pose"  # turned or tilted too far for a frontal model
    BLUR = "blur"  # too little detail (motion blur, out of focus)
    NO_LANDMARKS = "no_landmarks"  # the detector gave no landmarks to align on


@dataclass(frozen=True)
class QualityGate:
    """Thresholds of the gate; the defaults are documented in docs/edge-vision.md."""

    min_face_px: float = 32.0  # box height; the age chip is 64 px, with padding ~40 px of face
    max_yaw: float = 0.35  # |nose offset from the eyes' midpoint| / eye distance
    max_roll_deg: float = 25.0  # eye line from horizontal
    min_sharpness: float = 15.0  # variance of the Laplacian of the grey face crop

    def check(self, image: Frame, row: FaceRow) -> Rejection | None:
        """None when the face may be estimated, else the first reason it may not."""
        x, y, w, h = (float(v) for v in row[:4])
        if min(w, h) < self.min_face_px:
            return Rejection.SMALL
        points = landmarks(row)
        if points is None:
            return Rejection.NO_LANDMARKS
        if pose_out_of_range(points, self.max_yaw, self.max_roll_deg):
            return Rejection.POSE
        if sharpness(image, x, y, w, h) < self.min_sharpness:
            return Rejection.BLUR
        return None


def pose_out_of_range(points: npt.NDArray[np.float32], max_yaw: float, max_roll: float) -> bool:
    """Whether the landmarks show a face turned (yaw proxy) or tilted (roll) past the limits."""
    right_eye, left_eye, nose = points[0], points[1], points[2]
    eyes = left_eye - right_eye
    distance = float(np.hypot(*eyes))
    if distance < 1.0:
        return True
    roll = abs(float(np.degrees(np.arctan2(eyes[1], eyes[0]))))
    midpoint = (left_eye + right_eye) / 2
    # the nose's offset along the eye line, as a share of the eye distance
    yaw = abs(float(np.dot(nose - midpoint, eyes))) / distance**2
    return roll > max_roll or yaw > max_yaw


def sharpness(image: Frame, x: float, y: float, w: float, h: float) -> float:
    """Variance of the Laplacian over the face box (a standard focus measure)."""
    ih, iw = image.shape[:2]
    x1, y1 = max(int(x), 0), max(int(y), 0)
    x2, y2 = min(int(x + w), iw), min(int(y + h), ih)
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0
    crop = image[y1:y2, x1:x2]
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    # normalise to a 64 px high face so the measure does not grow with resolution
    scale = 64.0 / grey.shape[0]
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
