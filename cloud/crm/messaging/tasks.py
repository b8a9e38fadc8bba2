"""Celery tasks of the messaging hub: `messaging.dispatch` works the outbox (beat runs it every
few seconds; running it twice at once is safe: claims use SKIP LOCKED and leases)."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any

import psycopg

from cloud.core.logging import request_id_var
from cloud.core.settings import Settings
from cloud.crm.messaging import selection
from cloud.crm.messaging.channels.base import build_channel
from cloud.crm.messaging.config import messaging_config
from cloud.crm.messaging.dispatch import Dispatcher, providers_of
from cloud.workers.app import celery_app, worker_settings

log = logging.getLogger(__name__)
_DISPATCHERS: dict[tuple[str, int], Dispatcher] = {}


def dispatcher_for(settings: Settings) -> Dispatcher:
    """One dispatcher per process and config (its channels keep their connections open)."""
    config = messaging_config(settings)
    key = (settings.database_url, id(config))
    if key not in _DISPATCHERS:
        channels = {
            name: build_channel(cfg, settings.database_url) for name, cfg in config.channels.items()
        }
        providers = {
            name: providers_of(route, lambda cfg: build_channel(cfg, settings.database_url))
            for name, route in config.routes.items()
        }
        _DISPATCHERS.clear()
        _DISPATCHERS[key] = Dispatcher(config=config, channels=channels, providers=providers)
    return _DISPATCHERS[key]


def run_dispatch(settings: Settings) -> dict[str, Any]:
    """Work every due message; the counts of what happened."""
    dispatcher = dispatcher_for(settings)
    with psycopg.connect(settings.database_url) as conn:
        counts = dispatcher.run(conn)
    out = dataclasses.asdict(counts)
    log.info("messages dispatched", extra=out)
    return out


@celery_app.task(name="messaging.dispatch")  # type: ignore[untyped-decorator]
def dispatch() -> dict[str, Any]:
    """Send every due message from the outbox."""
    token = request_id_var.set(f"messaging.dispatch-{uuid.uuid4().hex[:12]}")
    try:
        return run_dispatch(worker_settings())
    finally:
        request_id_var.reset(token)


def run_bandit_settle(settings: Settings, *, batches: int = 20) -> int:
    """Settle the channel bandit's lapsed trials (people not messaged or viewed again), up to
    `batches` x 500 people; returns how many trials were settled."""
    settled = 0
    with psycopg.connect(settings.database_url) as conn:
        for _ in range(batches):
            now = conn.execute("SELECT now()").fetchone()
            assert now is not None
            n = selection.settle_due(conn, now=now[0])
            conn.commit()
            settled += n
            if n == 0:
                break
    log.info("bandit trials settled", extra={"settled": settled})
    return settled


@celery_app.task(name="messaging.bandit_settle")  # type: ignore[untyped-decorator]
def bandit_settle() -> int:
    """Settle lapsed bandit trials so segment priors include people not messaged again."""
    token = request_id_var.set(f"messaging.bandit_settle-{uuid.uuid4().hex[:12]}")
    try:
        return run_bandit_settle(worker_settings())
    finally:
        request_id_var.reset(token)
