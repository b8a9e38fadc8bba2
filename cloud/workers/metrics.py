"""Celery task metrics through Celery's signals, and the worker's /metrics server.

Listed in TASK_MODULES, so every worker process imports it and the handlers below connect. The
main process serves /metrics, /healthz and /readyz on MALLPULSE_METRICS_PORT. The prefork pool
runs tasks in child processes: set PROMETHEUS_MULTIPROC_DIR (an empty folder) before the worker
starts, so the children's samples are written there and the main process merges them (files
of exited children stay: their counts keep adding up, as counters must).
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from celery import signals

from cloud.core.metrics import TASK_FAILURES, TASK_RUNS, TASK_SECONDS
from cloud.core.metrics_http import MetricsServer, serve_metrics

log = logging.getLogger(__name__)
_started: dict[str, float] = {}  # task id -> perf_counter at prerun (one process's own tasks)
_server: list[MetricsServer] = []


def _name(task: Any) -> str:
    return str(getattr(task, "name", None) or "unknown")


def _prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


def _postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    began = _started.pop(task_id, None) if task_id else None
    name = _name(task)
    TASK_RUNS.labels(name, state or "UNKNOWN").inc()
    if began is not None:
        TASK_SECONDS.labels(name).observe(time.perf_counter() - began)


def _failure(sender: Any = None, **_: Any) -> None:
    TASK_FAILURES.labels(_name(sender)).inc()


def _serve(**_: Any) -> None:
    from cloud.workers.app import worker_settings  # the app imports this module first

    server = serve_metrics(worker_settings().metrics_port, {})
    if server is not None:
        _server.append(server)


def _stop(**_: Any) -> None:
    while _server:
        _server.pop().stop()


for _signal, _handler in (
    (signals.task_prerun, _prerun),
    (signals.task_postrun, _postrun),
    (signals.task_failure, _failure),
    (signals.worker_init, _serve),
    (signals.worker_shutdown, _stop),
):
    cast(Any, _signal).connect(_handler, weak=False)  # Celery's Signal is untyped
