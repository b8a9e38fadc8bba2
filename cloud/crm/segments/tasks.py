"""Celery tasks of segments (all on beat): incremental membership every few seconds, a sweep
that lets time windows lapse, and the daily size snapshot. Each is safe to run twice or
concurrently: the consumer holds a lock, and each segment is reconciled under its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg

from cloud.core.logging import request_id_var
from cloud.core.settings import Settings
from cloud.workers.app import celery_app, worker_settings

UPDATE_TASK = "crm.segments_update"
SWEEP_TASK = "crm.segments_sweep"
SNAPSHOT_TASK = "crm.segments_snapshot"


def run_update(settings: Settings) -> int:
    """Drain the change sources; returns how many rows were read."""
    from cloud.crm.segments.handlers import process_all

    with psycopg.connect(settings.database_url) as conn:
        return sum(b.read for b in process_all(conn))


def run_sweep(settings: Settings, *, now: datetime | None = None) -> int:
    """Re-evaluate every dynamic segment; returns how many entered or exited."""
    from cloud.crm.segments.service import sweep

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return sum(r.entered + r.exited for r in sweep(conn, now=now or datetime.now(UTC)))


def run_snapshot(settings: Settings) -> int:
    """Record today's size of every segment; returns how many."""
    from cloud.crm.segments.service import snapshot

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return snapshot(conn)


def _traced(name: str, run: object) -> int:
    token = request_id_var.set(f"{name}-{uuid.uuid4().hex[:12]}")
    try:
        assert callable(run)
        return int(run(worker_settings()))
    finally:
        request_id_var.reset(token)


@celery_app.task(name=UPDATE_TASK)  # type: ignore[untyped-decorator]
def segments_update() -> int:
    """Incremental membership from new events, purchases and profile changes."""
    return _traced(UPDATE_TASK, run_update)


@celery_app.task(name=SWEEP_TASK)  # type: ignore[untyped-decorator]
def segments_sweep() -> int:
    """Full re-evaluation: lapsed time windows and rescored predictions."""
    return _traced(SWEEP_TASK, run_sweep)


@celery_app.task(name=SNAPSHOT_TASK)  # type: ignore[untyped-decorator]
def segments_snapshot() -> int:
    """Daily segment sizes."""
    return _traced(SNAPSHOT_TASK, run_snapshot)
