"""Celery tasks of scoring (on beat): the incremental scorer every few seconds, and a sweep
that rescores programmes whose rules changed and lets decay move MQL/SQL levels. Each is safe
to run twice or concurrently: the consumer holds an advisory lock, the rescoring locks its
programme row."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg

from cloud.core.logging import request_id_var
from cloud.core.settings import Settings
from cloud.workers.app import celery_app, worker_settings

UPDATE_TASK = "crm.scoring_update"
SWEEP_TASK = "crm.scoring_sweep"


def run_update(settings: Settings) -> int:
    """Drain new events and sales; returns how many rows were read."""
    from cloud.crm.scoring.handlers import process_all

    with psycopg.connect(settings.database_url) as conn:
        return sum(b.read for b in process_all(conn))


def run_sweep(settings: Settings) -> int:
    """Rescore changed programmes, apply decay to levels; returns the transitions logged."""
    from cloud.crm.scoring.handlers import sweep

    with psycopg.connect(settings.database_url) as conn:
        return sweep(conn)


def _traced(name: str, run: Callable[[Settings], int]) -> int:
    token = request_id_var.set(f"{name}-{uuid.uuid4().hex[:12]}")
    try:
        return int(run(worker_settings()))
    finally:
        request_id_var.reset(token)


@celery_app.task(name=UPDATE_TASK)  # type: ignore[untyped-decorator]
def scoring_update() -> int:
    """Incremental scores from new events and purchases."""
    return _traced(UPDATE_TASK, run_update)


@celery_app.task(name=SWEEP_TASK)  # type: ignore[untyped-decorator]
def scoring_sweep() -> int:
    """Rescore after rule changes; decay moves levels."""
    return _traced(SWEEP_TASK, run_sweep)
