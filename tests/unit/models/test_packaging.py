"""The wheel carries the model manifests and the shipped age/gender networks (models/ is not a
Python package), where `edge.config.files.installed_manifests_dir()` looks for them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from edge.config.files import installed_manifests_dir, manifests_dir

REPO = Path(__file__).resolve().parents[3]


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel of the tracked files (built from a copy: the build writes build/ and egg-info)."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to build the wheel (.ci/run installs it)")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")  # fmt: skip
    src = tmp_path / "src"
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    subprocess.run([uv, "build", "--wheel", "--no-build-isolation", "--python", sys.executable,
                    "--out-dir", str(tmp_path / "dist"), "-q"], cwd=src, check=True)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("mallpulse-*.whl")
    return wheel


def test_wheel_ships_every_manifest_where_an_install_looks(tmp_path: Path) -> None:
    manifests = sorted(
        p.name
        for pattern in ("*.yaml", "*.onnx", "NOTICE-*.md")  # the shipped age/gender networks too
        for p in (REPO / "models").glob(pattern)
    )
    assert {"yolox_nano.yaml", "yunet.yaml", "dlib_age_gender.yaml", "dlib_age_v1.onnx"} <= set(
        manifests
    )
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    data = [n for n in names if ".data/data/" in n]
    where = installed_manifests_dir().relative_to(sysconfig.get_path("data"))
    shipped = sorted(n.rpartition("/")[2] for n in data if f"/data/{where.as_posix()}/" in n)
    assert shipped == manifests, data
    assert any(n.startswith("mallpulse/") for n in names)


def test_a_checkout_reads_the_manifests_from_models() -> None:
    assert manifests_dir() == REPO / "models"
