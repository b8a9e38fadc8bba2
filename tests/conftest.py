"""Root test configuration: shared-asset location and the real-service fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.services"]

REPO = Path(__file__).resolve().parent.parent


def shared_path() -> Path:
    """The shared assets folder: $MALLPULSE_SHARED or ../shared beside the repository."""
    return Path(os.environ.get("MALLPULSE_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared assets folder; fails (never skips) when it is missing."""
    path = shared_path()
    if not path.is_dir():
        pytest.fail(f"shared assets not found at {path}; set MALLPULSE_SHARED")
    return path


@pytest.fixture(scope="session")
def shared_file(shared_dir: Path):  # type: ignore[no-untyped-def]
    """A function returning a file under shared/, failing with its path when missing."""

    def _get(relative: str) -> Path:
        path = shared_dir / relative
        if not path.is_file():
            pytest.fail(f"required shared file missing: {path}")
        return path

    return _get


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO
