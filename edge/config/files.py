"""The files a device config refers to, found by one rule, and the check that they are there.

The rule: a path written in the config (`detector.manifest`, `detector.models_dir`) is taken
from the config file's folder; a model file (the manifest's `file`, `demographics.face_model`,
`demographics.age_gender_model`) from the models folder, i.e. `detector.models_dir`, else
`$MALLPULSE_SHARED/models`; an age/gender model not found there is looked up among the models
shipped with MallPulse (models/ of a checkout, share/mallpulse/models of an install). Absolute
paths are used as they are.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from edge.config.loader import ConfigError
from edge.config.model import EdgeConfig


def installed_manifests_dir() -> Path:
    """Where an install from the wheel puts models/*.yaml (pyproject's data-files)."""
    return Path(sysconfig.get_path("data")) / "share" / "mallpulse" / "models"


def manifests_dir() -> Path:
    """The model manifests: models/ of a source checkout, else the installed copy."""
    checkout = Path(__file__).resolve().parents[2] / "models"
    return checkout if (checkout / "yolox_nano.yaml").is_file() else installed_manifests_dir()


def _from(base: Path | None, path: Path) -> Path:
    return path if path.is_absolute() or base is None else base / path


def models_folder(config: EdgeConfig, base_dir: Path | None) -> Path:
    """The folder model files are read from."""
    from edge.detect.manifest import default_models_dir

    folder = config.detector.models_dir
    return _from(base_dir, folder) if folder is not None else default_models_dir()


def manifest_path(config: EdgeConfig, base_dir: Path | None) -> Path | None:
    """The detector's manifest, or None when the detector needs none."""
    manifest = config.detector.manifest
    return _from(base_dir, manifest) if manifest is not None else None


def demographics_models(config: EdgeConfig, base_dir: Path | None) -> tuple[Path, Path | None]:
    """(face model, age/gender model or None); ConfigError naming the field of a missing one
    (the emotion model, when set, is checked too: `emotion_model`)."""
    demo = config.demographics
    folder = models_folder(config, base_dir)
    face = _from(folder, demo.face_model)
    wanted = demo.age_gender_model
    gender = _from(folder, wanted) if wanted is not None else None
    if wanted is not None and gender is not None and not gender.is_file():
        bundled = manifests_dir() / wanted  # the models shipped with MallPulse
        gender = bundled if not wanted.is_absolute() and bundled.is_file() else gender
    problems = [
        (name, f"model file {path} not found (model files are read from the models folder, "
               f"{folder}: set detector.models_dir or MALLPULSE_SHARED, or give a full path)")
        for name, path in (("demographics.face_model", face),
                           ("demographics.age_gender_model", gender),
                           ("demographics.emotion_model", emotion_model(config, base_dir)))
        if path is not None and not path.is_file()
    ]  # fmt: skip
    if problems:
        raise ConfigError("config", problems)
    return face, gender


def emotion_model(config: EdgeConfig, base_dir: Path | None) -> Path | None:
    """The expression model's path (relative to the models folder), or None when not set."""
    wanted = config.demographics.emotion_model
    return _from(models_folder(config, base_dir), wanted) if wanted is not None else None


def file_problems(config: EdgeConfig, base_dir: Path | None) -> list[tuple[str, str]]:
    """(field, message) for each referenced file that is missing, unreadable or not the file
    its manifest describes (weights are checked against their sha256)."""
    from edge.detect.errors import ModelFileError, ModelManifestError
    from edge.detect.manifest import load_manifest, resolve_weights

    problems: list[tuple[str, str]] = []
    manifest = manifest_path(config, base_dir)
    if manifest is not None:
        try:
            resolve_weights(load_manifest(manifest), models_folder(config, base_dir))
        except ModelManifestError as exc:
            problems.append(("detector.manifest", str(exc)))
        except ModelFileError as exc:
            problems.append(("detector.models_dir", str(exc)))
    if config.demographics.enabled:
        try:
            demographics_models(config, base_dir)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def check_files(config: EdgeConfig, path: Path) -> None:
    """Raise ConfigError naming the file and field of every referenced file that is not right."""
    problems = file_problems(config, path.resolve().parent)
    if problems:
        raise ConfigError(str(path), problems)
