"""deploy/docker: the images copy files that exist, run unprivileged and start the right command.

No Docker engine is available here, so these are static checks of the Dockerfiles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "deploy" / "docker"
IMAGES = {
    "cloud.Dockerfile": ["mallpulse", "cloud", "api"],
    "gateway.Dockerfile": ["mallpulse", "edge", "run", "--config", "/etc/mallpulse/edge.yaml"],
}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_copied_sources_exist_and_are_not_ignored(name: str) -> None:
    dockerfile = DOCKER / name
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copies = [args for word, args in instructions(dockerfile) if word == "COPY"]
    sources = [s for args in copies if "--from=" not in args for s in args.split()[:-1]]
    assert sources, f"{name} copies nothing"
    for source in sources:
        assert list(REPO.glob(source)), f"{name}: COPY of missing {source}"
        assert source.rstrip("/") in included, f"{name}: {source} is excluded by .dockerignore"


@pytest.mark.parametrize(("name", "command"), sorted(IMAGES.items()))
def test_image_runs_unprivileged_under_tini(name: str, command: list[str]) -> None:
    steps = instructions(DOCKER / name)
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [args for word, args in final if word == "USER"]
    assert users and not users[-1].startswith(("0", "root")), f"{name}: final stage runs as root"
    (entrypoint,) = [json.loads(args) for word, args in final if word == "ENTRYPOINT"]
    assert entrypoint == ["/usr/bin/tini", "--"]
    (cmd,) = [json.loads(args) for word, args in final if word == "CMD"]
    assert cmd == command
    installs = " ".join(args for word, args in steps if word == "RUN")
    assert ".[cloud]" in installs if name.startswith("cloud") else ".[edge]" in installs
    assert "-c requirements/ci.txt" in installs, f"{name}: versions not pinned by the lock file"
