"""Detection: the `Detector` protocol, the canonical `Detections` type and the adapters."""

from edge.detect.errors import DetectError, ModelFileError, ModelFormatError, ModelManifestError
from edge.detect.factory import build_detector
from edge.detect.gating import MotionGatedDetector
from edge.detect.manifest import ModelManifest, default_models_dir, load_manifest, resolve_weights
from edge.detect.motion import MotionDetector, MotionGate
from edge.detect.types import Detections, Detector, Frame, Prepared, StagedDetector

__all__ = [
    "DetectError",
    "Detections",
    "Detector",
    "Frame",
    "ModelFileError",
    "ModelFormatError",
    "ModelManifest",
    "ModelManifestError",
    "MotionDetector",
    "MotionGate",
    "MotionGatedDetector",
    "Prepared",
    "StagedDetector",
    "build_detector",
    "default_models_dir",
    "load_manifest",
    "resolve_weights",
]
