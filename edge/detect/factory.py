"""Build the configured detector: resolve the manifest, check the weights, load the model."""

from __future__ import annotations

from pathlib import Path

from edge.config import DetectorConfig
from edge.detect.errors import DetectError
from edge.detect.manifest import load_manifest, resolve_weights
from edge.detect.motion import MotionDetector
from edge.detect.types import Detector


def _resolve(path: Path, base_dir: Path | None) -> Path:
    return path if path.is_absolute() or base_dir is None else base_dir / path


def build_detector(config: DetectorConfig, *, base_dir: Path | None = None) -> Detector:
    """The detector `config` describes; relative paths are taken from `base_dir`."""
    if config.kind == "motion":
        return MotionDetector()
    if config.manifest is None:  # the config model already refuses this
        raise DetectError(f"detector kind '{config.kind}' needs a manifest")
    manifest = load_manifest(_resolve(config.manifest, base_dir))
    models_dir = _resolve(config.models_dir, base_dir) if config.models_dir else None
    weights = resolve_weights(manifest, models_dir)
    if config.kind == "ultralytics":
        raise DetectError(
            "detector kind 'ultralytics' is not available on the gateway; export the model to "
            "ONNX with models/export.py and use kind 'onnx'"
        )
    from edge.detect.onnx import OnnxDetector

    return OnnxDetector(
        manifest,
        weights,
        score_threshold=config.score_threshold,
        nms_threshold=config.nms_threshold,
        threads=config.threads,
        classes=config.classes,
    )
