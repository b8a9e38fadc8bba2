"""Aggregate demographics: YuNet faces on tracked people, age and gender, one vote per track.

Estimators: the shipped dlib-models networks (edge.analytics.age_gender.DlibAgeGender, faces
aligned on YuNet's landmarks), or any ONNX model of the "genderage" contract (OnnxAgeGender:
input [1, 3, 96, 96] float32, a BGR 0-255 face crop; output [1, 3] = (female score, male score,
age / 100)). A quality gate (edge.analytics.faces.QualityGate: size, pose, blur) keeps faces the
models cannot read out of the vote. Faces never leave this module: only counts by age band and
gender do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.analytics.emotion import VALENCES
from edge.analytics.faces import FaceRow, QualityGate, Rejection
from edge.analytics.geometry import points_in_polygon
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
    """Finds faces on a BGR image; rows x, y, w, h, score, then optionally five landmarks
    (edge.analytics.faces: 15 columns)."""

    def faces(self, image: Frame) -> npt.NDArray[np.float32]:
        """Face rows on `image`."""
        ...


class EmotionEstimator(Protocol):
    """(positive, neutral, negative) probabilities of a face row on an image."""

    def valence(self, image: Frame, row: FaceRow) -> npt.NDArray[np.float32]:
        """Valence probabilities of one face."""
        ...


class AgeGenderEstimator(Protocol):
    """Estimates (female score, male score, age in years) of a face row on an image."""

    needs_landmarks: bool

    def estimate(self, image: Frame, row: FaceRow) -> tuple[float, float, float]:
        """Scores and age of one face."""
        ...


class YuNetFaceDetector:
    """OpenCV's YuNet face detector (cv2.FaceDetectorYN)."""

    def __init__(self, model: Path, *, score_threshold: float = 0.6) -> None:
        if not model.is_file():
            raise ModelFormatError(f"YuNet face model {model} not found")
        self._net = cv2.FaceDetectorYN.create(str(model), "", (320, 320), score_threshold)

    def faces(self, image: Frame) -> npt.NDArray[np.float32]:
        """(N, 15) face rows x, y, w, h, score, then the five landmarks, in `image` pixels."""
        h, w = image.shape[:2]
        self._net.setInputSize((w, h))
        _, found = self._net.detect(image)
        if found is None:
            return np.zeros((0, 15), np.float32)
        return np.asarray(found[:, [0, 1, 2, 3, 14, *range(4, 14)]], np.float32)


class OnnxAgeGender:
    """Age/gender model on onnxruntime, checked against the documented contract at load."""

    needs_landmarks = False

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

    def estimate(self, image: Frame, row: FaceRow) -> tuple[float, float, float]:
        """(female score, male score, age in years) of the face box `row` on `image`."""
        h, w = image.shape[:2]
        x, y, fw, fh = (float(v) for v in row[:4])
        face = image[max(int(y), 0) : min(int(y + fh), h), max(int(x), 0) : min(int(x + fw), w)]
        if face.size == 0:
            raise ValueError("the face box lies outside the image")
        crop = cv2.resize(np.ascontiguousarray(face), (FACE_SIZE, FACE_SIZE))
        blob = crop.transpose(2, 0, 1)[None].astype(np.float32)
        female, male, age = self._session.run(None, {self._input: blob})[0][0].tolist()
        return float(female), float(male), float(age) * 100.0


@dataclass(slots=True)
class _Samples:
    last_t: float
    votes: list[tuple[float, float, float]] = field(default_factory=list)  # (female, male, age)
    moods: list[tuple[str, npt.NDArray[np.float32]]] = field(default_factory=list)  # zone, p
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
        gate: QualityGate | None = None,
        emotion: EmotionEstimator | None = None,
        zones: dict[str, npt.NDArray[np.float64]] | None = None,
    ) -> None:
        self.face_detector = faces
        self.estimator = estimator
        self.sample_every_s = sample_every_s
        self.max_samples = max_samples
        self.gate = gate
        self.emotion = emotion
        self.zones = zones or {}  # zone id -> polygon edges (normalised), for emotion by zone
        self.rejected: Counter[Rejection] = Counter()  # faces kept out of the vote, by reason
        self._tracks: dict[int, _Samples] = {}
        self._counts: Counter[tuple[int, int]] = Counter()
        self._emotions: Counter[tuple[str, int]] = Counter()

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
        row = found[int(found[:, 4].argmax())]
        fx, fy, fw, fh = (float(v) for v in row[:4])
        if fw < 1 or fh < 1 or fx + fw <= 0 or fy + fh <= 0:
            return
        st.faces += 1
        if self.estimator is None and self.emotion is None:
            return
        if self.gate is not None:
            reason = self.gate.check(person, row)
            landmarks_needed = self.estimator is not None and self.estimator.needs_landmarks
            if reason is Rejection.NO_LANDMARKS and not landmarks_needed:
                reason = None
            if reason is not None:
                self.rejected[reason] += 1
                return
        if self.estimator is not None:
            st.votes.append(self.estimator.estimate(person, row))
        if self.emotion is not None:
            st.moods.append((self._zone_of(tr, w, h), self.emotion.valence(person, row)))

    def _zone_of(self, tr: Track, w: int, h: int) -> str:
        """The first zone holding the track's anchor (normalised), '' outside every zone."""
        ax, ay = tr.anchor
        point = np.array([[ax / w, ay / h]], np.float64)
        for zone_id, edges in self.zones.items():
            if bool(points_in_polygon(point, edges)[0]):
                return zone_id
        return ""

    def _vote(self, tid: int) -> None:
        st = self._tracks.pop(tid, None)
        if st is None or st.faces == 0:
            return
        by_zone: dict[str, list[npt.NDArray[np.float32]]] = {}
        for zone_id, p in st.moods:
            by_zone.setdefault(zone_id, []).append(p)
        for zone_id, ps in by_zone.items():  # one vote per person and zone: the mean's argmax
            self._emotions[(zone_id, VALENCES[int(np.mean(ps, axis=0).argmax())])] += 1
        if not st.votes:
            self._counts[(pb.AGE_BAND_UNSPECIFIED, pb.GENDER_UNKNOWN)] += 1
            return
        # gender: the mean probability over the track's faces (an exact tie is unknown); age:
        # the median of the faces' expected ages, robust to one bad sample
        female = float(np.mean([f for f, _, _ in st.votes]))
        male = float(np.mean([m for _, m, _ in st.votes]))
        gender = (
            pb.GENDER_UNKNOWN
            if abs(female - male) < 1e-6
            else (pb.GENDER_FEMALE if female > male else pb.GENDER_MALE)
        )
        self._counts[(age_band(float(np.median([a for _, _, a in st.votes]))), gender)] += 1

    def end_all(self) -> None:
        """Count the votes of every track still held (shutdown)."""
        for tid in list(self._tracks):
            self._vote(tid)

    def take_window(self) -> dict[tuple[int, int], int]:
        """Votes counted in this window by (age band, gender); counting restarts."""
        counts, self._counts = dict(self._counts), Counter()
        return counts

    def take_emotions(self) -> dict[tuple[str, int], int]:
        """Expression votes counted in this window by (zone id, valence); counting restarts."""
        counts, self._emotions = dict(self._emotions), Counter()
        return counts

    @property
    def tracked(self) -> int:
        """Tracks with samples held (for memory checks)."""
        return len(self._tracks)
