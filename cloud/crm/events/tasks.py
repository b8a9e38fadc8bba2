"""Celery tasks of events: partitions ahead (daily) and retention per source (hourly); the
beat entries are in cloud/workers/schedule.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg

from cloud.core.logging import request_id_var
from cloud.crm.events import retention
from cloud.workers.app import celery_app, worker_settings


@celery_app.task(name="events.ensure_partitions")  # type: ignore[untyped-decorator]
def ensure_partitions() -> int:
    """Create the coming months' event partitions (a no-op on TimescaleDB)."""
    token = request_id_var.set(f"events.ensure_partitions-{uuid.uuid4().hex[:12]}")
    try:
        with psycopg.connect(worker_settings().database_url) as conn:
            return retention.ensure_partitions(conn)
    finally:
        request_id_var.reset(token)


@celery_app.task(name="events.retention")  # type: ignore[untyped-decorator]
def apply_retention() -> dict[str, int]:
    """Delete events past their source's retention; drop partitions every source is done with."""
    token = request_id_var.set(f"events.retention-{uuid.uuid4().hex[:12]}")
    try:
        with psycopg.connect(worker_settings().database_url) as conn:
            res = retention.apply_retention(conn, now=datetime.now(UTC))
        return res.__dict__
    finally:
        request_id_var.reset(token)
