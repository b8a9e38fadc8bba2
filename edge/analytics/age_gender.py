"""dlib-models' age and gender networks (CC0-1.0, shipped in models/ as ONNX) on onnxruntime.

The manifest (`models/dlib_age_gender.yaml`) names the two graphs with their sha256, the chip
sizes, the channel means and the chip padding. Each face is aligned on YuNet's five landmarks to
dlib's mean face (edge.analytics.faces), converted to RGB, normalised as (byte - mean) / 256 and
run through both networks: gender gives (female, male) probabilities, age a distribution over
0-80 years whose expectation is the estimate.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from edge.analytics.faces import FaceRow, aligned_chip, landmarks
from edge.detect.errors import ModelFormatError
from edge.detect.types import Frame

MANIFEST_FORMAT = "dlib-age-gender"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises untyped errors
        raise ModelFormatError(f"{path}: onnxruntime cannot load it: {exc}") from exc


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest's fields, checked; ModelFormatError naming the file and field otherwise."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelFormatError(f"{path}: cannot read the age/gender manifest: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
        raise ModelFormatError(f"{path}: format must be '{MANIFEST_FORMAT}'")
    for key in ("age", "gender"):
        part = raw.get(key)
        if not isinstance(part, dict) or not {"file", "sha256", "size"} <= part.keys():
            raise ModelFormatError(f"{path}: '{key}' needs file, sha256 and size")
    means = raw.get("means")
    if not (isinstance(means, list) and len(means) == 3):
        raise ModelFormatError(f"{path}: 'means' must list three channel means (R, G, B)")
    return raw


class DlibAgeGender:
    """Age and gender from aligned face chips; needs landmarks on every face row."""

    needs_landmarks = True

    def __init__(self, manifest: Path, *, threads: int = 1) -> None:
        spec = load_manifest(manifest)
        sessions = {}
        for key in ("age", "gender"):
            part = spec[key]
            weights = manifest.parent / str(part["file"])
            if not weights.is_file():
                raise ModelFormatError(f"{manifest}: {key}.file {weights} not found")
            if _sha256(weights) != part["sha256"]:
                raise ModelFormatError(f"{weights}: sha256 differs from {manifest} ({key}.sha256)")
            sessions[key] = _session(weights, threads)
        self._age, self._gender = sessions["age"], sessions["gender"]
        self.age_size, self.gender_size = int(spec["age"]["size"]), int(spec["gender"]["size"])
        self.padding = float(spec.get("padding", 0.2))
        self._means = np.asarray(spec["means"], np.float32)
        self._check(self._age, self.age_size, 81, manifest, "age")
        self._check(self._gender, self.gender_size, 2, manifest, "gender")
        self._years = np.array([0.25, *range(1, 81)], np.float32)

    @staticmethod
    def _check(session: Any, size: int, classes: int, manifest: Path, key: str) -> None:
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        if list(inp.shape)[1:] != [3, size, size] or list(out.shape)[1:] != [classes]:
            raise ModelFormatError(
                f"{manifest}: {key} network takes {inp.shape} -> {out.shape}, expected "
                f"[N, 3, {size}, {size}] -> [N, {classes}]"
            )

    def _blob(self, chips: list[Frame]) -> npt.NDArray[np.float32]:
        rgb = np.stack(chips)[..., ::-1].astype(np.float32)  # BGR -> RGB
        return np.ascontiguousarray(((rgb - self._means) / 256.0).transpose(0, 3, 1, 2))

    def estimate_many(self, image: Frame, rows: list[FaceRow]) -> list[tuple[float, float, float]]:
        """(female probability, male probability, expected age in years) of each face row."""
        if not rows:
            return []
        points = []
        for row in rows:
            found = landmarks(row)
            if found is None:
                raise ValueError("DlibAgeGender needs face rows with landmarks")
            points.append(found)
        ages = [aligned_chip(image, p, self.age_size, self.padding) for p in points]
        genders = [aligned_chip(image, p, self.gender_size, self.padding) for p in points]
        age_p = self._age.run(None, {self._age.get_inputs()[0].name: self._blob(ages)})[0]
        gender_p = self._gender.run(None, {self._gender.get_inputs()[0].name: self._blob(genders)})[
            0
        ]
        expected = np.asarray(age_p, np.float32) @ self._years
        return [
            (float(g[0]), float(g[1]), float(a))
            for g, a in zip(np.asarray(gender_p), expected, strict=True)
        ]

    def estimate(self, image: Frame, row: FaceRow) -> tuple[float, float, float]:
        """(female probability, male probability, expected age in years) of one face row."""
        return self.estimate_many(image, [row])[0]
