"""`mallpulse cloud ...` commands with the database down: one line saying what to do and a
non-zero exit code, never a traceback (run as an operator runs them, in a real process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens


@pytest.mark.parametrize(
    "argv",
    [
        ["cloud", "migrate"],
        ["cloud", "apikey", "create", "--name", "k", "--role", "admin"],
        ["cloud", "acl", "--out", "{tmp}/acl"],
        ["cloud", "device", "--store", "s-1", "--id", "gw-1"],
    ],
    ids=lambda argv: argv[1],
)
def test_database_down_is_one_clear_line(argv: list[str], tmp_path: object) -> None:
    url = f"postgresql://ops:hunter2secret@127.0.0.1:{_closed_port()}/mallpulse"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLPULSE_")}
    env["MALLPULSE_DATABASE_URL"] = url
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    res = subprocess.run([sys.executable, "-m", "mallpulse", *args], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: the database is unreachable (")
    assert "start PostgreSQL or point MALLPULSE_DATABASE_URL at a running server" in lines[0]
    assert "hunter2secret" not in res.stderr and "ops:***@127.0.0.1" in lines[0]
