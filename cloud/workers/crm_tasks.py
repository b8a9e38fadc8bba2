"""Celery tasks of the CRM: loyalty point expiry and tier reviews (both daily on beat).

Both are safe to run twice or concurrently: each account is handled in its own transaction under
its row lock, and only points still unconsumed past their expiry are expired.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import psycopg

from cloud.core.logging import request_id_var
from cloud.core.settings import Settings
from cloud.workers.app import celery_app, worker_settings

log = logging.getLogger(__name__)


def run_expiry(settings: Settings, *, now: datetime | None = None) -> int:
    """Expire past-due loyalty points; returns the points expired."""
    from cloud.crm.loyalty.ledger import expire_due

    # autocommit: each account is its own transaction, so its row lock is held only briefly
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        expired = expire_due(conn, now=now or datetime.now(UTC))
    log.info("loyalty points expired", extra={"points": expired})
    return expired


def run_tier_review(settings: Settings, *, now: datetime | None = None) -> int:
    """Review accounts whose tier period ended; returns how many changed tier."""
    from cloud.crm.config import crm_config
    from cloud.crm.loyalty.tiers import review_due

    # autocommit: each account is its own transaction, so its row lock is held only briefly
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        changed = review_due(conn, now=now or datetime.now(UTC), program=crm_config(settings)[1])
    log.info("loyalty tiers reviewed", extra={"downgraded": changed})
    return changed


@celery_app.task(name="crm.expire_points")  # type: ignore[untyped-decorator]
def expire_points() -> int:
    """Daily loyalty point expiry."""
    token = request_id_var.set(f"crm.expire_points-{uuid.uuid4().hex[:12]}")
    try:
        return run_expiry(worker_settings())
    finally:
        request_id_var.reset(token)


@celery_app.task(name="crm.review_tiers")  # type: ignore[untyped-decorator]
def review_tiers() -> int:
    """Daily tier review (downgrades happen only at period end)."""
    token = request_id_var.set(f"crm.review_tiers-{uuid.uuid4().hex[:12]}")
    try:
        return run_tier_review(worker_settings())
    finally:
        request_id_var.reset(token)
