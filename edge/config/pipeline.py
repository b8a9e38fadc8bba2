"""Configuration of the vision pipeline stages: detector, motion gating, tracker, demographics."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge.config.base import StrictModel


class MotionGatingConfig(StrictModel):
    """Skip the neural detector on frames without motion; tracks are kept alive meanwhile."""

    enabled: bool = Field(default=True, description="Turn motion gating on or off.")
    min_area: float = Field(
        default=0.001,
        ge=0.0,
        le=1.0,
        description="Fraction of the frame that must change to count as motion.",
    )
    max_skip_s: float = Field(
        default=2.0,
        ge=0.0,
        description="Run the detector at least this often (seconds) even without motion.",
    )


class DetectorConfig(StrictModel):
    """Which person detector runs and how."""

    kind: Literal["onnx", "motion", "ultralytics"] = Field(
        default="onnx",
        description="'onnx' (YOLOX/YOLOv8/YOLO11 via onnxruntime), 'motion' (no weights), "
        "or 'ultralytics' (optional extra).",
    )
    manifest: Path | None = Field(
        default=None,
        description="Model manifest (YAML) naming file, sha256, input size and output format; "
        "required for 'onnx' and 'ultralytics'.",
    )
    models_dir: Path | None = Field(
        default=None,
        description="Folder holding model weights; defaults to $MALLPULSE_SHARED/models.",
    )
    score_threshold: float = Field(default=0.35, gt=0.0, lt=1.0, description="Minimum score.")
    nms_threshold: float = Field(default=0.45, gt=0.0, lt=1.0, description="NMS IoU threshold.")
    threads: int = Field(default=2, ge=1, le=64, description="onnxruntime intra-op threads.")
    classes: tuple[str, ...] = Field(
        default=("person",), min_length=1, description="Class names to keep."
    )
    motion_gating: MotionGatingConfig = Field(
        default_factory=MotionGatingConfig, description="Motion gating of the detector."
    )
    pipelined: bool = Field(
        default=True,
        description="In the daemon, run the network on frame n in a worker thread while frame "
        "n-1 is decoded, tracked and analysed (faster on 2+ cores; analytics lag one frame). "
        "Replays always run unpipelined so their annotations match the frame.",
    )

    @model_validator(mode="after")
    def _manifest_needed(self) -> DetectorConfig:
        if self.kind in ("onnx", "ultralytics") and self.manifest is None:
            raise ValueError(f"detector kind '{self.kind}' needs a 'manifest'")
        return self


class TrackerConfig(StrictModel):
    """ByteTrack-class tracker settings."""

    high_threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Score for first-round association."
    )
    low_threshold: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Score for second-round association."
    )
    match_iou: float = Field(default=0.2, gt=0.0, lt=1.0, description="Minimum IoU to match.")
    min_hits: int = Field(default=3, ge=1, le=30, description="Hits before a track is confirmed.")
    lost_buffer_s: float = Field(
        default=1.5, ge=0.0, le=60.0, description="Seconds a lost track is kept for re-matching."
    )

    @model_validator(mode="after")
    def _ordered(self) -> TrackerConfig:
        if self.low_threshold >= self.high_threshold:
            raise ValueError("low_threshold must be below high_threshold")
        return self


class DemographicsConfig(StrictModel):
    """Optional aggregate demographics (faces never leave the device)."""

    enabled: bool = Field(default=False, description="Run face and age/gender estimation.")
    face_model: Path = Field(
        default=Path("face_detection_yunet_2026may.onnx"),
        description="YuNet face detector ONNX file (relative to the models folder).",
    )
    age_gender_model: Path | None = Field(
        default=Path("dlib_age_gender.yaml"),
        description="Age/gender model: the shipped dlib-models networks (a manifest of format "
        "'dlib-age-gender', the default) or an ONNX file of the documented 'genderage' "
        "contract; null to detect faces without classifying them.",
    )
    min_face_px: float = Field(
        default=32.0, ge=8.0, description="Smaller faces are kept out of the vote (quality gate)."
    )
    max_yaw: float = Field(
        default=0.35,
        gt=0.0,
        le=1.0,
        description="Largest nose offset from the eyes' midpoint, as a share of the eye distance.",
    )
    max_roll_deg: float = Field(
        default=25.0, gt=0.0, le=90.0, description="Largest tilt of the eye line, in degrees."
    )
    min_sharpness: float = Field(
        default=15.0, ge=0.0, description="Least variance of the Laplacian of the face (blur)."
    )
    emotion_model: Path | None = Field(
        default=None,
        description="Facial-expression ONNX model of the documented contract ([N, 1, 64, 64] "
        "grey in [-1, 1] -> one score per label); none ships (docs/edge-vision.md, 'Emotion').",
    )
    emotion_labels: tuple[str, ...] = Field(
        default=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
        min_length=2,
        description="The model's output labels in order (FER2013's by default); each maps to "
        "a valence: happy positive; neutral and surprise neutral; the others negative.",
    )
    sample_every_s: float = Field(
        default=0.5, gt=0.0, description="Seconds between samples of one track."
    )
    max_samples_per_track: int = Field(
        default=5, ge=1, le=50, description="Samples voted over per track."
    )


class WindowConfig(StrictModel):
    """Aggregation windows aligned to wall-clock time."""

    length_s: int = Field(
        default=60, ge=5, le=3600, description="Window length in seconds (divides the day)."
    )

    @model_validator(mode="after")
    def _divides_day(self) -> WindowConfig:
        if 86400 % self.length_s:
            raise ValueError("length_s must divide 86400 so windows align to the day")
        return self
