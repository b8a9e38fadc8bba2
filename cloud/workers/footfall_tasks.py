"""Celery tasks of ingest and footfall: retention on plain PostgreSQL and stale presence.

Beat runs `footfall.prune` hourly and `footfall.mark_stale` every minute (cloud.workers.schedule).
Raw rows are kept `MALLPULSE_FOOTFALL_RETENTION_DAYS`; the envelope ledger is kept
`MALLPULSE_INGEST_MAX_AGE_DAYS` + 1 days: older envelopes are rejected as out of range
anyway, so a forgotten ledger row can never let a duplicate in.
"""

from __future__ import annotations

import logging
import uuid

import psycopg

from cloud.core.logging import request_id_var
from cloud.core.settings import Settings
from cloud.db.repositories import telemetry_retention
from cloud.workers.app import celery_app, worker_settings

log = logging.getLogger(__name__)


def run_prune(settings: Settings, *, raw_days: int | None = None) -> dict[str, int]:
    """Delete expired ingest rows (one transaction); raw rows older than `raw_days` (default
    settings.footfall_retention_days)."""
    with psycopg.connect(settings.database_url) as conn:
        deleted = telemetry_retention.prune(
            conn,
            raw_days=raw_days if raw_days is not None else settings.footfall_retention_days,
            ledger_days=settings.ingest_max_age_days + 1,
            event_hours=24,
            dead_letter_days=90,
        )
    log.info("footfall retention", extra={"deleted": deleted})
    return deleted


@celery_app.task(name="footfall.prune")  # type: ignore[untyped-decorator]
def prune() -> dict[str, int]:
    """Hourly retention."""
    token = request_id_var.set(f"footfall.prune-{uuid.uuid4().hex[:12]}")
    try:
        return run_prune(worker_settings())
    finally:
        request_id_var.reset(token)


@celery_app.task(name="footfall.mark_stale")  # type: ignore[untyped-decorator]
def mark_stale() -> int:
    """Devices silent for 5 minutes without an offline message are marked offline."""
    token = request_id_var.set(f"footfall.mark_stale-{uuid.uuid4().hex[:12]}")
    try:
        with psycopg.connect(worker_settings().database_url) as conn:
            return telemetry_retention.mark_stale_offline(conn, silent_s=300)
    finally:
        request_id_var.reset(token)
