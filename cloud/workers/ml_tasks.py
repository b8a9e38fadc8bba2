"""Celery tasks of the predictive models; thin wrappers around cloud.ml.service.

Beat runs `ml.learn_churn` every few seconds (each run learns one batch of new CRM events exactly
once and re-scores the customers it touched), `ml.score_all` and `ml.learn_footfall` hourly and
`ml.fit_clv` daily. Producers of events may also trigger `ml.learn_churn` right away with
`learn_churn.delay()`. The intervals are Settings' ml_consume_interval_s and ml_score_interval_s
(MALLPULSE_ML_CONSUME_INTERVAL_S, MALLPULSE_ML_SCORE_INTERVAL_S), put into the beat schedule by
cloud.workers.schedule.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg

from cloud.core.logging import request_id_var
from cloud.core.settings import Settings
from cloud.ml.errors import ModelNotFoundError, ModelVersionConflictError
from cloud.workers.app import celery_app, worker_settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@contextmanager
def _context(task: str) -> Iterator[tuple[Settings, psycopg.Connection[Any]]]:
    """Settings, a connection and a message id for the structured logs of one task run."""
    token = request_id_var.set(f"{task}-{uuid.uuid4().hex[:12]}")
    try:
        settings = worker_settings()
        with psycopg.connect(settings.database_url) as conn:
            yield settings, conn
    finally:
        request_id_var.reset(token)


def _guard(task: str, work: Callable[[Settings, psycopg.Connection[Any]], T]) -> T | None:
    """Run work; a missing model or a lost version race is a skipped round, not a failure."""
    with _context(task) as (settings, conn):
        try:
            return work(settings, conn)
        except (ModelNotFoundError, ModelVersionConflictError) as exc:
            log.info("skipped", extra={"task": task, "reason": exc.detail})
            return None


@celery_app.task(name="ml.learn_churn")  # type: ignore[untyped-decorator]
def learn_churn() -> dict[str, Any] | None:
    """Learn one batch of new CRM events and re-score the customers it touched."""
    from cloud.ml import service

    def work(settings: Settings, conn: psycopg.Connection[Any]) -> dict[str, Any]:
        res = service.learn(conn, settings=settings)
        scored = service.score_customers(conn, customer_ids=list(res.customers), settings=settings)
        conn.commit()
        if res.read >= settings.ml_consume_batch:
            learn_churn.delay()  # backlog: keep draining without waiting for the next beat
        return {
            "read": res.read,
            "applied": res.applied,
            "rejected": res.rejected,
            "version": res.version,
            "scored": scored,
            "busy": res.busy,
        }

    return _guard("ml.learn_churn", work)


@celery_app.task(name="ml.score_all")  # type: ignore[untyped-decorator]
def score_all() -> int | None:
    """Score every customer with the current churn model and CLV fits."""
    from cloud.ml import service

    return _guard("ml.score_all", lambda s, c: service.score_everyone(c, settings=s))


@celery_app.task(name="ml.fit_clv")  # type: ignore[untyped-decorator]
def fit_clv() -> list[dict[str, Any]] | None:
    """Refit BG/NBD and Gamma-Gamma for all customers and per store."""
    from cloud.ml import service

    def work(settings: Settings, conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
        fits = service.refit_clv(conn, settings=settings)
        conn.commit()
        return fits

    return _guard("ml.fit_clv", work)


@celery_app.task(name="ml.learn_footfall")  # type: ignore[untyped-decorator]
def learn_footfall() -> dict[str, int] | None:
    """Learn new closed footfall hours of every store (anomaly scores and forecasts)."""
    from cloud.ml.footfall import service

    return _guard("ml.learn_footfall", lambda s, c: service.learn_all(c))
