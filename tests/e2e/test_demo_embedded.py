"""`mallpulse demo --embedded --duration N`, what a fresh machine without PostgreSQL or Mosquitto
runs: embedded PostgreSQL (pgserver) and MQTT broker (rumqttd). Footfall from the edge agent
reaches /footfall/live, nothing panics or prints a traceback, the demo exits 0 when its duration
ends and leaves no process behind (children, broker, embedded PostgreSQL)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from mallpulse.demo.services import free_port

READY_LINE = "[7/8] running"
DURATION_S = 90
BAD_WORDS = re.compile(r"panicked|Traceback|PoisonError")


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _processes_using(folder: Path) -> list[str]:
    """Command lines of live processes that name `folder` (the demo's children all do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmd:
            found.append(f"{entry.name}: {cmd[:200]}")
    return found


@pytest.fixture
def demo_dir() -> Any:
    # Not pytest's tmp_path: as root, pgserver runs postgres as a system user that must traverse
    # every parent folder, and pytest keeps its temp root private (0700).
    folder = Path(tempfile.mkdtemp(prefix="mallpulse-demo-embedded-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_embedded_demo_runs_end_to_end_and_stops_clean(demo_dir: Path) -> None:
    port = free_port()
    run_dir, out = demo_dir / "run", demo_dir / "demo.out"
    argv = [
        sys.executable, "-m", "mallpulse", "demo", "--embedded", "--duration", str(DURATION_S),
        "--data-dir", str(run_dir), "--api-port", str(port), "--customers", "20",
        "--stores", "1", "--window-s", "5",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLPULSE_")}
    with out.open("w") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while READY_LINE not in _text(out):
            assert proc.poll() is None, f"demo exited ({proc.returncode}):\n{_text(out)}"
            assert time.monotonic() < deadline, f"demo not running after 240 s:\n{_text(out)}"
            time.sleep(0.5)
        assert "MQTT: embedded MQTT 5 broker" in _text(out)
        assert "PostgreSQL: embedded (pgserver)" in _text(out)
        token = json.loads((run_dir / "access.json").read_text())["store_manager"]
        live: dict[str, Any] = {}
        while not live.get("in_today", 0) + live.get("out_today", 0):
            assert proc.poll() is None, f"demo ended before any footfall:\n{_text(out)}"
            time.sleep(1.0)
            res = httpx.get(f"http://127.0.0.1:{port}/v1/stores/demo-001/footfall/live",
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)  # fmt: skip
            assert res.status_code == 200, res.text
            live = res.json()
        assert live["devices_online"] == 1
        assert proc.wait(DURATION_S + 90) == 0, _text(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    text = _text(out)
    assert "stopped." in text
    pids = [int(p) for p in re.findall(r"started \w+ pid (\d+)", text)]
    assert len(pids) == 5, text
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert _processes_using(demo_dir) == []  # broker and embedded PostgreSQL are gone too
    logs = {p.name: _text(p) for p in sorted((run_dir / "logs").glob("*.log"))}
    assert set(logs) >= {"ingest.log", "edge.log", "api.log", "worker.log", "simulator.log"}
    for name, body in {"demo output": text, **logs}.items():
        assert not BAD_WORDS.search(body), f"{name}:\n{body[-4000:]}"
    dropped = [
        line
        for line in logs["ingest.log"].splitlines()
        if "mqtt ingest disconnected" in line and "Normal disconnection" not in line
    ]
    assert dropped == []  # the broker never dropped the ingest (only its own stop at the end)
    assert '"mqtt connection lost"' not in logs["edge.log"], logs["edge.log"][-4000:]
