"""Facial expression -> valence (positive, neutral, negative) with an operator-supplied ONNX model.

Contract (docs/edge-vision.md, "Emotion"): input `[N, 1, 64, 64]` float32, the face box cropped,
greyscale, resized to 64x64 and scaled to [-1, 1]; output `[N, K]` scores over the expression
labels named in the config (FER2013's seven by default). Each label maps to a valence; the
valence probabilities are the sums of their labels' softmax scores. No model ships: the one
offline model found was trained on FER2013, whose terms do not cover commercial use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.analytics.faces import FaceRow
from edge.detect.errors import ModelFormatError
from edge.detect.types import Frame
from protos.mallpulse.v1 import telemetry_pb2 as pb

SIZE = 64
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Surprise is neither pleasant nor unpleasant on its own: it counts as neutral.
VALENCE_OF = {
    "happy": pb.VALENCE_POSITIVE,
    "neutral": pb.VALENCE_NEUTRAL,
    "surprise": pb.VALENCE_NEUTRAL,
    "angry": pb.VALENCE_NEGATIVE,
    "disgust": pb.VALENCE_NEGATIVE,
    "fear": pb.VALENCE_NEGATIVE,
    "sad": pb.VALENCE_NEGATIVE,
    "contempt": pb.VALENCE_NEGATIVE,
}
VALENCES = (pb.VALENCE_POSITIVE, pb.VALENCE_NEUTRAL, pb.VALENCE_NEGATIVE)


def _probabilities(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The model's outputs as probabilities: kept when they already are (a graph ending in
    softmax), a softmax of them otherwise (logits)."""
    if (x >= 0).all() and np.allclose(x.sum(axis=1), 1.0, atol=1e-3):
        return x
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), np.float32)


class OnnxEmotion:
    """An expression model on onnxruntime, checked against the contract at load."""

    def __init__(self, model: Path, labels: tuple[str, ...] = FER2013_LABELS, threads: int = 1):
        import onnxruntime as ort

        unknown = [name for name in labels if name not in VALENCE_OF]
        if unknown:
            raise ModelFormatError(
                f"{model}: labels {unknown} have no valence; known: {sorted(VALENCE_OF)}"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session: Any = ort.InferenceSession(str(model), opts, ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises untyped errors
            raise ModelFormatError(f"{model}: onnxruntime cannot load it: {exc}") from exc
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        if list(inp.shape)[1:] != [1, SIZE, SIZE]:
            raise ModelFormatError(f"{model}: input {inp.shape}, contract is [N, 1, 64, 64]")
        if len(out.shape) != 2 or out.shape[1] != len(labels):
            raise ModelFormatError(
                f"{model}: output {out.shape}, contract is [N, {len(labels)}] (one per label)"
            )
        self._input = inp.name
        # (K, 3) matrix summing label probabilities into valence probabilities
        self._to_valence = np.zeros((len(labels), 3), np.float32)
        for i, name in enumerate(labels):
            self._to_valence[i, VALENCES.index(VALENCE_OF[name])] = 1.0

    def valence(self, image: Frame, row: FaceRow) -> npt.NDArray[np.float32]:
        """(positive, neutral, negative) probabilities of the face box `row` on `image`."""
        h, w = image.shape[:2]
        x, y, fw, fh = (float(v) for v in row[:4])
        face = image[max(int(y), 0) : min(int(y + fh), h), max(int(x), 0) : min(int(x + fw), w)]
        if face.size == 0:
            raise ValueError("the face box lies outside the image")
        grey = cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_BGR2GRAY)
        chip = cv2.resize(grey, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
        blob = (chip / 127.5 - 1.0)[None, None]
        scores = np.asarray(self._session.run(None, {self._input: blob})[0], np.float32)
        return np.asarray((_probabilities(scores) @ self._to_valence)[0], np.float32)
