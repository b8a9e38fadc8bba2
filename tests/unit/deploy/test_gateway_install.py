"""deploy/gateway/install.sh: valid bash, --help, a dry run that changes nothing, staged installs.

Every run here uses --dry-run or --prefix, so the test machine itself is never touched.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "deploy" / "gateway" / "install.sh"
PROJECT_UNIT = REPO / "deploy" / "systemd" / "mallpulse-edge.service"
EXAMPLE_CONFIG = REPO / "firmware-config" / "example-store.yaml"
STEPS = [
    "preflight",
    "apt packages",
    "system user",
    "directories",
    "virtual environment",
    "model manifests",
    "device config",
    "systemd unit",
    "done",
]
EXEC_START = (
    "ExecStart=/opt/mallpulse/venv/bin/mallpulse edge run --config /etc/mallpulse/edge.yaml"
)


def install(*args: str | Path, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the installer (as the `nobody` user when asked and when the tests run as root)."""
    command = ["bash", str(SCRIPT), *map(str, args)]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root for this test"
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def unit() -> Iterator[Path]:
    """A stand-in systemd unit (readable by `nobody`), independent of the project's unit."""
    with tempfile.TemporaryDirectory(prefix="mallpulse-unit-") as folder:
        Path(folder).chmod(0o755)
        path = Path(folder) / "mallpulse-edge.service"
        path.write_text("[Unit]\nDescription=test\n[Service]\nExecStart=/bin/false\n")
        path.chmod(0o644)
        yield path


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A folder with a file named like the YOLOX-Nano weights."""
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "yolox_nano.onnx").write_bytes(b"not really a model")
    return folder


def test_script_is_valid_bash_and_executable() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert SCRIPT.stat().st_mode & stat.S_IXUSR


def test_help_lists_the_options_without_root() -> None:
    result = install("--help", unprivileged=True)
    assert result.returncode == 0, result.stderr
    for option in ("--config", "--models-from", "--prefix", "--dry-run", "--no-start", "--help"):
        assert option in result.stdout


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path, unit: Path) -> None:
    prefix = tmp_path / "root"
    result = install(
        "--dry-run", "--prefix", prefix, "--unit", unit, "--config", EXAMPLE_CONFIG,
        unprivileged=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    headers = [line[4:] for line in result.stdout.splitlines() if line.startswith("==> ")]
    assert [next(s for s in STEPS if h.startswith(s)) for h in headers] == STEPS
    assert f"[dry-run] install -d -m 0750 {prefix}/etc/mallpulse" in result.stdout
    assert f"{prefix}/opt/mallpulse/venv" in result.stdout
    assert "nothing was changed" in result.stdout
    assert not prefix.exists()


def test_dry_run_of_a_real_install_plans_user_service_and_start(unit: Path) -> None:
    result = install("--dry-run", "--unit", unit, "--no-venv", unprivileged=True)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[dry-run] apt-get update" in out
    assert "useradd --system" in out or "exists" in out
    assert "[dry-run] systemctl enable mallpulse-edge" in out
    assert "[dry-run] systemctl restart mallpulse-edge" in out
    assert "install -d -m 0750 -o mallpulse -g mallpulse /var/lib/mallpulse" in out


def test_offline_install_uses_only_the_wheelhouse(tmp_path: Path, unit: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    result = install("--dry-run", "--prefix", tmp_path / "root", "--unit", unit, "--wheels", wheels)
    assert result.returncode == 0, result.stderr
    (pip,) = [line for line in result.stdout.splitlines() if "pip install" in line]
    assert f"--no-index --find-links {wheels}" in pip and pip.endswith("[edge]")


def test_dry_run_finds_the_projects_systemd_unit() -> None:
    assert PROJECT_UNIT.is_file(), f"systemd unit missing: {PROJECT_UNIT}"
    result = install("--dry-run", "--prefix", "/nonexistent/stage", unprivileged=True)
    assert result.returncode == 0, result.stderr
    assert str(PROJECT_UNIT) in result.stdout


def test_staged_install_lays_out_config_state_models_and_unit(
    tmp_path: Path, unit: Path, weights: Path
) -> None:
    prefix = tmp_path / "root"
    result = install(
        "--prefix", prefix, "--unit", unit, "--no-venv", "--config", EXAMPLE_CONFIG,
        "--models-from", weights,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    etc, state = prefix / "etc" / "mallpulse", prefix / "var" / "lib" / "mallpulse"
    assert (etc / "edge.yaml").read_text() == EXAMPLE_CONFIG.read_text()
    assert stat.S_IMODE((etc / "edge.yaml").stat().st_mode) == 0o640
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    assert (etc / "models" / "yolox_nano.yaml").is_file()
    assert (state / "models" / "yolox_nano.onnx").read_bytes() == b"not really a model"
    units = prefix / "etc" / "systemd" / "system"
    assert (units / "mallpulse-edge.service").read_text() == unit.read_text()
    dropin = (units / "mallpulse-edge.service.d" / "10-install.conf").read_text()
    assert EXEC_START in dropin.splitlines()
    assert (
        "User=mallpulse" in dropin and "Environment=MALLPULSE_SHARED=/var/lib/mallpulse" in dropin
    )
    assert "skipped systemctl" in result.stdout


def test_second_run_is_idempotent_and_keeps_a_local_config(
    tmp_path: Path, unit: Path, weights: Path
) -> None:
    prefix = tmp_path / "root"
    args = ("--prefix", prefix, "--unit", unit, "--no-venv", "--models-from", weights)
    assert install(*args, "--config", EXAMPLE_CONFIG).returncode == 0
    config = prefix / "etc" / "mallpulse" / "edge.yaml"
    config.write_text(config.read_text() + "# tuned on site\n")
    again = install(*args, "--config", EXAMPLE_CONFIG)
    assert again.returncode == 0, again.stderr
    assert config.read_text().endswith("# tuned on site\n")
    assert (config.parent / "edge.yaml.new").read_text() == EXAMPLE_CONFIG.read_text()
    assert "unchanged:" in again.stdout and "mallpulse-edge.service" in again.stdout
    third = install(*args)
    assert third.returncode == 0 and "kept:" in third.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown option: --bogus"),
        (["--config", "/nonexistent/edge.yaml"], "no such file: /nonexistent/edge.yaml"),
        (["--models-from", "/nonexistent/models"], "no such folder: /nonexistent/models"),
        (["--wheels", "/nonexistent/wheels"], "no such folder: /nonexistent/wheels"),
        (["--unit", "/nonexistent/x.service"], "systemd unit missing: /nonexistent/x.service"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(
    tmp_path: Path, unit: Path, args: list[str], message: str
) -> None:
    base = ["--dry-run", "--prefix", str(tmp_path / "root")]
    if "--unit" not in args:
        base += ["--unit", str(unit)]
    result = install(*base, *args)
    assert result.returncode != 0
    assert message in result.stderr
