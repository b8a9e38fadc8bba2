"""Child processes of the demo: start with a readiness check, watch, stop them all cleanly."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class DemoError(RuntimeError):
    """A demo component failed to start or died; the message says which and where its log is."""


@dataclass
class Child:
    """One supervised process."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: IO[bytes]

    def tail(self, lines: int = 15) -> str:
        """The last lines of the child's log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Supervisor:
    """Starts `python -m mallpulse ...` (or any argv) children and stops them as a group."""

    log_dir: Path
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        ready: Callable[[], bool] | None = None,
        timeout_s: float = 60.0,
    ) -> Child:
        """Start a child; with `ready`, block until it returns True (DemoError on timeout/death)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        proc = subprocess.Popen(
            argv,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child = Child(name, proc, log_path, log_file)
        self.children.append(child)
        if ready is not None:
            self._wait_ready(child, ready, timeout_s)
        return child

    def _wait_ready(self, child: Child, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise DemoError(
                    f"{child.name} exited with code {child.process.returncode} while starting; "
                    f"its log ({child.log_path}) ends with:\n{child.tail()}"
                )
            if ready():
                return
            time.sleep(0.2)
        raise DemoError(f"{child.name} was not ready after {timeout_s:.0f} s; see {child.log_path}")

    def python(self, *args: str) -> list[str]:
        """argv running this interpreter with `args`."""
        return [sys.executable, *args]

    def dead(self) -> list[Child]:
        """Children that have exited."""
        return [c for c in self.children if c.process.poll() is not None]

    def stop_all(self, timeout_s: float = 15.0) -> None:
        """SIGTERM every child's process group, wait, then SIGKILL what is left."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(5)
            child._log_file.close()
        self.children.clear()
