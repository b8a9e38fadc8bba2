"""Model manifests (models/*.yaml): what a weights file is, and the check that it is that file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.detect.errors import ModelFileError, ModelManifestError

COCO80: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic_light",
    "fire_hydrant",
    "stop_sign",
    "parking_meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports_ball",
    "kite",
    "baseball_bat",
    "baseball_glove",
    "skateboard",
    "surfboard",
    "tennis_racket",
    "bottle",
    "wine_glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot_dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted_plant",
    "bed",
    "dining_table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell_phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy_bear",
    "hair_drier",
    "toothbrush",
)


class ModelManifest(BaseModel):
    """One model: weights file, checksum, input size, output format, labels and licence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Model name.")
    file: str = Field(min_length=1, description="Weights file name inside the models folder.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the weights file.")
    input_size: tuple[int, int] | None = Field(
        default=None, description="Network input [width, height] in pixels."
    )
    output_format: Literal["yolox", "yolov8", "yunet"] = Field(
        description="'yolox' raw grids [1, N, 5+C]; 'yolov8' (also YOLO11) [1, 4+C, N]; 'yunet'."
    )
    input_layout: Literal["bgr_0_255", "rgb_0_1"] = Field(
        default="bgr_0_255", description="Channel order and value range the network expects."
    )
    pad_value: int = Field(default=114, ge=0, le=255, description="Letterbox padding value.")
    strides: tuple[int, ...] = Field(default=(8, 16, 32), description="YOLOX grid strides.")
    labels: Literal["coco80"] | list[str] = Field(
        default="coco80", description="'coco80' or the list of class names in output order."
    )
    licence: str = Field(default="unknown", description="Licence of the weights.")
    source: str = Field(default="", description="Where the weights come from.")

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in the network's output order."""
        return COCO80 if isinstance(self.labels, str) else tuple(self.labels)


def default_models_dir() -> Path:
    """$MALLPULSE_SHARED/models, with <repo>/../shared as the default shared folder."""
    shared = os.environ.get("MALLPULSE_SHARED")
    root = Path(shared) if shared else Path(__file__).resolve().parents[2].parent / "shared"
    return root / "models"


def load_manifest(path: Path) -> ModelManifest:
    """Read and validate a manifest; ModelManifestError names the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelManifestError(f"{path}: cannot read model manifest: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ModelManifestError(f"{path}: model manifest is not valid YAML: {exc}") from exc
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ModelManifestError(f"{path}: {field}: {first['msg']}") from exc


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(manifest: ModelManifest, models_dir: Path | None) -> Path:
    """Path of the manifest's weights after checking that they exist and match the sha256."""
    folder = models_dir if models_dir is not None else default_models_dir()
    path = folder / manifest.file
    if not path.is_file():
        raise ModelFileError(
            f"model '{manifest.name}': weights file {path} not found "
            "(set detector.models_dir or MALLPULSE_SHARED)"
        )
    actual = file_sha256(path)
    if actual != manifest.sha256:
        raise ModelFileError(
            f"model '{manifest.name}': {path} has sha256 {actual}, "
            f"but the manifest says {manifest.sha256}; refusing to load it"
        )
    return path
