"""Celery tasks of automation. `automation.triggers` (beat, every 2 s) reads new events and
domain events and enrols; it sends `automation.advance` when it enrolled or woke someone.
`automation.advance` (beat, every 2 s, and on demand) claims due executions with SKIP LOCKED
and steps them; it sends itself again while a full batch came back. `automation.periodic`
(beat, every 60 s) fires schedule, date and churn triggers. All are safe to run concurrently:
the consumer holds a lock, each execution row is locked per step, and actions are journalled."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.core.logging import request_id_var
from cloud.core.settings import Settings
from cloud.crm.automation.actions import ActionConfig
from cloud.crm.automation.engine import Engine, run_due
from cloud.workers.app import celery_app, worker_settings

log = logging.getLogger(__name__)
TRIGGERS_TASK = "automation.triggers"
ADVANCE_TASK = "automation.advance"
PERIODIC_TASK = "automation.periodic"
BATCH = 200
LEASE_S = 60.0  # a dead worker's executions are claimed again after this


def engine_for(settings: Settings) -> Engine:
    """The engine with webhook secrets derived from the server secret (one per name)."""
    base = settings.jwt_secret.get_secret_value().encode() if settings.jwt_secret else b""

    class _Derived(dict[str, bytes]):
        def get(self, name: str, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
            if not base:
                return default
            return hmac.new(base, f"automation-webhook:{name}".encode(), hashlib.sha256).digest()

    return Engine(actions=ActionConfig(webhook_secrets=_Derived()))


def run_triggers(settings: Settings, *, now: datetime | None = None) -> int:
    """Drain the trigger sources; returns how many executions started or woke."""
    from cloud.crm.automation.handlers import process_all

    with psycopg.connect(settings.database_url) as conn:
        batches = process_all(conn, now=now or datetime.now(UTC))
    return sum(len(b.enrolled) + b.woken for b in batches)


def run_advance(
    settings: Settings, *, now: datetime | None = None, limit: int = BATCH, lease_s: float = LEASE_S
) -> int:
    """Step one batch of due executions; returns how many executions were claimed."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        claimed, _ = run_due(
            conn, now=now or datetime.now(UTC), limit=limit, lease_s=lease_s,
            engine=engine_for(settings),
        )  # fmt: skip
    return claimed


def run_periodic(settings: Settings, *, now: datetime | None = None) -> int:
    """Fire schedule, date and churn triggers; returns how many executions started."""
    from cloud.crm.automation.handlers import run_periodic as fire

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return len(fire(conn, now=now or datetime.now(UTC)))


def _traced(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


def _again(task: Any, **kwargs: Any) -> None:
    """Send `task` to the queue the running task came from (a worker serves its own queue)."""
    queue = (celery_app.current_task.request.delivery_info or {}).get("routing_key")
    task.apply_async(kwargs=kwargs, queue=queue) if queue else task.apply_async(kwargs=kwargs)


@celery_app.task(name=TRIGGERS_TASK)  # type: ignore[untyped-decorator]
def automation_triggers(lease_s: float = LEASE_S) -> int:
    """Enrol from new events and domain events; kick the stepper when there is work."""
    token = request_id_var.set(_traced(TRIGGERS_TASK))
    try:
        n = run_triggers(worker_settings())
        if n:
            _again(automation_advance, lease_s=lease_s)
        return n
    finally:
        request_id_var.reset(token)


@celery_app.task(name=ADVANCE_TASK)  # type: ignore[untyped-decorator]
def automation_advance(lease_s: float = LEASE_S) -> int:
    """Step due executions (leased for `lease_s`); re-sends itself while batches come back
    full."""
    token = request_id_var.set(_traced(ADVANCE_TASK))
    try:
        n = run_advance(worker_settings(), lease_s=lease_s)
        if n >= BATCH:
            _again(automation_advance, lease_s=lease_s)
        return n
    finally:
        request_id_var.reset(token)


@celery_app.task(name=PERIODIC_TASK)  # type: ignore[untyped-decorator]
def automation_periodic() -> int:
    """Schedule, date-property and churn-risk triggers."""
    token = request_id_var.set(_traced(PERIODIC_TASK))
    try:
        n = run_periodic(worker_settings())
        if n:
            _again(automation_advance)
        return n
    finally:
        request_id_var.reset(token)
