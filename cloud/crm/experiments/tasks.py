"""Celery task of experiments (on beat): the daily results snapshot of running experiments.
Safe to run twice: a day's snapshot is an upsert."""

from __future__ import annotations

import uuid

import psycopg

from cloud.core.logging import request_id_var
from cloud.core.settings import Settings
from cloud.workers.app import celery_app, worker_settings

SNAPSHOT_TASK = "crm.experiments_snapshot"


def run_snapshot(settings: Settings) -> int:
    """Snapshot every running experiment; returns how many were stored."""
    from cloud.crm.experiments.service import snapshot_all

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return snapshot_all(conn)


@celery_app.task(name=SNAPSHOT_TASK)  # type: ignore[untyped-decorator]
def experiments_snapshot() -> int:
    """Daily experiment results."""
    token = request_id_var.set(f"{SNAPSHOT_TASK}-{uuid.uuid4().hex[:12]}")
    try:
        return run_snapshot(worker_settings())
    finally:
        request_id_var.reset(token)
