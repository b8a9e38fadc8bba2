"""Footfall models per store: learn closed hours exactly once, score anomalies, forecast."""

from __future__ import annotations

import logging
import pickle
import re
from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.db.repositories import ml_footfall as repo
from cloud.db.repositories import ml_models as model_repo
from cloud.ml.errors import ModelNotFoundError, ModelVersionConflictError
from cloud.ml.footfall.model import FootfallModel, ScoredHour

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
KIND = "footfall-holtwinters"


_STORE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_store(store_id: str) -> None:
    if not _STORE_ID.match(store_id):
        raise ModelNotFoundError(f"no footfall model for store {store_id!r} (not a store id)")


def model_name(store_id: str) -> str:
    """The ml_models name of a store's footfall model."""
    return f"footfall:{store_id}"


def _load(conn: Conn, store_id: str) -> tuple[FootfallModel, int | None]:
    row = model_repo.load(conn, model_name(store_id))
    if row is None:
        return FootfallModel(), None
    model = pickle.loads(row.state)  # noqa: S301 - our own table, written only below
    if not isinstance(model, FootfallModel):
        raise ModelNotFoundError(f"stored footfall state of '{store_id}' is not a FootfallModel")
    return model, row.version


def learn_store(conn: Conn, *, store_id: str, limit: int = 24 * 90) -> int:
    """Learn the store's closed hours since the last learnt one; returns hours learnt."""
    with conn.transaction():
        model, version = _load(conn, store_id)
        after = datetime.fromtimestamp(model.last_bucket, UTC) if model.last_bucket else None
        hours = repo.closed_hours(conn, store_id, after, limit)
        if not hours:
            return 0
        scored: list[ScoredHour] = []
        for bucket, people in hours:
            scored += model.learn(bucket.timestamp(), people)
        saved = _save(conn, store_id, model, version, scored)
        if saved is None:
            raise ModelVersionConflictError(f"footfall model of '{store_id}' changed meanwhile")
    flagged = sum(h.is_anomaly for h in scored)
    log.info(
        "footfall learnt", extra={"store_id": store_id, "hours": len(scored), "anomalies": flagged}
    )
    return len(scored)


def _save(
    conn: Conn, store_id: str, model: FootfallModel, version: int | None, scored: list[ScoredHour]
) -> int | None:
    """Store the scored hours and the model's next version (None: lost the version race)."""
    repo.save_scores(
        conn,
        store_id,
        [
            (
                datetime.fromtimestamp(h.bucket_start, UTC),
                h.observed,
                h.expected,
                h.score,
                h.is_anomaly,
            )
            for h in scored
        ],
    )
    last = datetime.fromtimestamp(model.last_bucket, UTC) if model.last_bucket else None
    return model_repo.save(
        conn,
        name=model_name(store_id),
        kind=KIND,
        expected_version=version,
        state=pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL),
        samples_seen=model.hours_seen,
        metrics=model.metrics(),
        watermarks={},
        clock=last,
    )


def learn_all(conn: Conn) -> dict[str, int]:
    """Learn every store with footfall; a store whose model is busy is skipped this round."""
    out: dict[str, int] = {}
    for store_id in repo.stores_with_footfall(conn):
        try:
            out[store_id] = learn_store(conn, store_id=store_id)
        except ModelVersionConflictError:
            log.info("footfall model busy", extra={"store_id": store_id})
    return out


def forecast(conn: Conn, *, store_id: str, horizon: int) -> dict[str, Any]:
    """The next `horizon` hours of the store."""
    _check_store(store_id)
    model, version = _load(conn, store_id)
    if version is None or not model.ready:
        raise ModelNotFoundError(
            f"no footfall model for store '{store_id}' yet (needs more than a day of hours)"
        )
    return {
        "store_id": store_id,
        "model": f"Holt-Winters additive, season {model.season} h (river)",
        "trained_until": datetime.fromtimestamp(model.last_bucket, UTC)
        if model.last_bucket
        else None,
        "points": [
            {"bucket_start": datetime.fromtimestamp(t, UTC), "expected": v}
            for t, v in model.forecast(horizon)
        ],
    }


def anomalies(
    conn: Conn, *, store_id: str, anomalies_only: bool, since: datetime | None, limit: int
) -> dict[str, Any]:
    """Scored hours of the store, newest first."""
    _check_store(store_id)
    rows = repo.scores(conn, store_id, anomalies_only=anomalies_only, since=since, limit=limit)
    return {"store_id": store_id, "items": rows}
