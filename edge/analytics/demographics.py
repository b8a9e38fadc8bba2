"""Aggregate demographics: YuNet faces on tracked people, an age/gender ONNX model, one vote each.

Age/gender contract (docs/edge-vision.md): input [1, 3, 96, 96] float32, a BGR 0-255 face crop;
output [1, 3] = (female score, male score, age / 100). Faces never leave this module: only
counts by age band and gender do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.detect.errors import ModelFormatError
from edge.detect.types import Frame
from edge.track.types import Track
from protos.mallpulse.v1 import telemetry_pb2 as pb

FACE_SIZE = 96
AGE_BANDS = (
    (18, pb.AGE_BAND_0_17),
    (25, pb.AGE_BAND_18_24),
    (35, pb.AGE_BAND_25_34),
    (45, pb.AGE_BAND_35_44),
    (55, pb.AGE_BAND_45_54),
    (65, pb.AGE_BAND_55_64),
)
MIN_PERSON_PX = 24


def age_band(age: float) -> int:
    """The proto AgeBand of an age in years."""
    for upper, band in AGE_BANDS:
        if age < upper:
            return band
    return pb.AGE_BAND_65_PLUS


class FaceDetector(Protocol):
    """Finds faces on a BGR image; returns (N, 5) rows x, y, w, h, score."""

    def faces(self, image: Frame) -> npt.NDArray[np.float32]:
        """Face boxes on `image`."""
        ...


class AgeGenderEstimator(Protocol):
    """Estimates (female score, male score, age in years) from a face crop."""

    def estimate(self, face: Frame) -> tuple[float, float, float]:
        """Scores and age of one face."""
        ...


class YuNetFaceDetector:
    """OpenCV's YuNet face detector (cv2.FaceDetectorYN)."""

    def __init__(self, model: Path, *, score_threshold: float = 0.6) -> None:
        if not model.is_file():
            raise ModelFormatError(f"YuNet face model {model} not found")
        self._net = cv2.FaceDetectorYN.create(str(model), "", (320, 320), score_threshold)

    def faces(self, image: Frame) -> npt.NDArray[np.float32]:
        """(N, 5) face boxes x, y, w, h, score in `image` pixels."""
        h, w = image.shape[:2]
        self._net.setInputSize((w, h))
        _, found = self._net.detect(image)
        if found is None:
            return np.zeros((0, 5), np.float32)
        return np.asarray(found[:, [0, 1, 2, 3, 14]], np.float32)


class OnnxAgeGender:
    """Age/gender model on onnxruntime, checked against the documented contract at load."""

    def __init__(self, model: Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(model), opts, ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises untyped errors
            raise ModelFormatError(f"{model}: onnxruntime cannot load it: {exc}") from exc
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        if list(inp.shape)[1:] != [3, FACE_SIZE, FACE_SIZE]:
            raise ModelFormatError(f"{model}: input {inp.shape}, contract is [1, 3, 96, 96]")
        if len(out.shape) != 2 or out.shape[1] != 3:
            raise ModelFormatError(f"{model}: output {out.shape}, contract is [1, 3]")
        self._input = inp.name

    def estimate(self, face: Frame) -> tuple[float, float, float]:
        """(female score, male score, age in years) of a face crop."""
        crop = cv2.resize(face, (FACE_SIZE, FACE_SIZE))
        blob = crop.transpose(2, 0, 1)[None].astype(np.float32)
        female, male, age = self._session.run(None, {self._input: blob})[0][0].tolist()
        return float(female), float(male), float(age) * 100.0


@dataclass(slots=True)
class _Samples:
    last_t: float
    votes: list[tuple[int, float]] = field(default_factory=list)  # (gender, age)
    faces: int = 0


class DemographicsStage:
    """Samples tracked people's faces at a set rate; each ended track casts one vote."""

    def __init__(
        self,
        faces: FaceDetector,
        estimator: AgeGenderEstimator | None,
        *,
        sample_every_s: float = 0.5,
        max_samples: int = 5,
    ) -> None:
        self.face_detector = faces
        self.estimator = estimator
        self.sample_every_s = sample_every_s
        self.max_samples = max_samples
        self._tracks: dict[int, _Samples] = {}
        self._counts: Counter[tuple[int, int]] = Counter()

    def update(self, frame: Frame, tracks: list[Track], t: float, removed: list[int]) -> None:
        """Sample due tracks on this frame and count the votes of ended tracks."""
        for tr in tracks:
            st = self._tracks.get(tr.id)
            if st is not None and (
                st.faces >= self.max_samples or t - st.last_t < self.sample_every_s
            ):
                continue
            if st is None:
                st = self._tracks[tr.id] = _Samples(t)
            st.last_t = t
            self._sample(frame, tr, st)
        for tid in removed:
            self._vote(tid)

    def _sample(self, frame: Frame, tr: Track, st: _Samples) -> None:
        h, w = frame.shape[:2]
        x1, y1 = max(int(tr.x1), 0), max(int(tr.y1), 0)
        x2, y2 = min(int(tr.x2), w), min(int(tr.y1 + 0.6 * (tr.y2 - tr.y1)), h)
        if x2 - x1 < MIN_PERSON_PX or y2 - y1 < MIN_PERSON_PX:
            return
        person = np.ascontiguousarray(frame[y1:y2, x1:x2])
        found = self.face_detector.faces(person)
        if found.shape[0] == 0:
            return
        fx, fy, fw, fh, _ = found[int(found[:, 4].argmax())].tolist()
        face = person[max(int(fy), 0) : int(fy + fh), max(int(fx), 0) : int(fx + fw)]
        if face.size == 0:
            return
        st.faces += 1
        if self.estimator is not None:
            female, male, age = self.estimator.estimate(np.ascontiguousarray(face))
            st.votes.append((pb.GENDER_FEMALE if female > male else pb.GENDER_MALE, age))

    def _vote(self, tid: int) -> None:
        st = self._tracks.pop(tid, None)
        if st is None or st.faces == 0:
            return
        if not st.votes:
            self._counts[(pb.AGE_BAND_UNSPECIFIED, pb.GENDER_UNKNOWN)] += 1
            return
        genders = Counter(g for g, _ in st.votes).most_common()
        tie = len(genders) > 1 and genders[0][1] == genders[1][1]
        gender = pb.GENDER_UNKNOWN if tie else genders[0][0]
        self._counts[(age_band(float(np.median([a for _, a in st.votes]))), gender)] += 1

    def end_all(self) -> None:
        """Count the votes of every track still held (shutdown)."""
        for tid in list(self._tracks):
            self._vote(tid)

    def take_window(self) -> dict[tuple[int, int], int]:
        """Votes counted in this window by (age band, gender); counting restarts."""
        counts, self._counts = dict(self._counts), Counter()
        return counts

    @property
    def tracked(self) -> int:
        """Tracks with samples held (for memory checks)."""
        return len(self._tracks)
