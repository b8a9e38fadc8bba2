"""With PROMETHEUS_MULTIPROC_DIR set (Celery's prefork pool), the main process exposes the sum of
what its forked children counted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import multiprocessing

    from cloud.core.metrics import TASK_RUNS, exposition

    def work(_: int) -> None:
        TASK_RUNS.labels("t", "SUCCESS").inc()

    if __name__ == "__main__":
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pool.map(work, range(4))
        print(exposition()[0].decode())
    """
)


def test_children_counts_add_up_in_the_parent(tmp_path: Path) -> None:
    folder = tmp_path / "multiproc"  # not there yet: the metrics module creates it
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).parents[4], check=True,
    ).stdout  # fmt: skip
    assert 'mallpulse_task_runs_total{state="SUCCESS",task="t"} 4.0' in out
    assert any(folder.glob("counter_*.db"))
