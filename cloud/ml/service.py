"""Service functions of the predictive API and tasks (keyword-only; they take a connection)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from cloud.core.settings import Settings
from cloud.db.repositories import ml_customers as cust_repo
from cloud.db.repositories import ml_models as model_repo
from cloud.ml.churn.consumer import BatchResult, advance_clock, consume_batch
from cloud.ml.churn.engine import ChurnConfig
from cloud.ml.churn.features import CustomerState
from cloud.ml.churn.model import ChurnModel
from cloud.ml.churn.store import CHURN_MODEL, ModelCache, load_model, save_model
from cloud.ml.errors import InvalidEventError, ModelNotFoundError
from cloud.ml.scoring import ScoringContext, as_of, fit_clv, load_fits, score_all, score_states

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
_CACHES: dict[str, ModelCache] = {}


def churn_config(settings: Settings) -> ChurnConfig:
    """The churn definition from settings."""
    return ChurnConfig(
        horizon_days=settings.ml_churn_horizon_days,
        snapshot_every_days=settings.ml_churn_snapshot_days,
        max_idle_snapshots=settings.ml_churn_max_idle_snapshots,
    )


def new_churn_model(settings: Settings) -> ChurnModel:
    """An untrained churn model configured from settings."""
    return ChurnModel(
        reset_on_drift=settings.ml_churn_reset_on_drift,
        learning_rate=settings.ml_churn_learning_rate,
    )


def model_cache(name: str = CHURN_MODEL) -> ModelCache:
    """This process's cache of a model (reloaded when another process saves a new version)."""
    return _CACHES.setdefault(name, ModelCache(name))


#: Late till uploads are tolerated this long before silence counts towards churn labels.
TICK_GRACE = timedelta(days=1)


def learn(conn: Conn, *, settings: Settings) -> BatchResult:
    """Consume one batch of CRM events into the churn model (exactly once).

    With nothing new to read, the clock ticks to now minus TICK_GRACE so churn labels still
    resolve while no purchases arrive.
    """
    config = churn_config(settings)
    res = consume_batch(
        conn, config=config, new_model=new_churn_model(settings), limit=settings.ml_consume_batch
    )
    if res.read == 0 and not res.busy and res.version is not None:
        advance_clock(conn, config=config, to=datetime.now(UTC) - TICK_GRACE)
    return res


def scoring_context(conn: Conn, *, settings: Settings) -> ScoringContext:
    """Current model, CLV fits and horizon for scoring."""
    loaded = model_cache().get(conn)
    return ScoringContext(
        loaded=loaded,
        fits=load_fits(conn),
        config=churn_config(settings),
        horizon_weeks=settings.ml_clv_horizon_weeks,
        as_of=as_of(loaded),
    )


def score_customers(conn: Conn, *, customer_ids: list[str], settings: Settings) -> int:
    """Re-score the given customers now (after their events were learnt) and store the scores."""
    raw = cust_repo.load_states(conn, CHURN_MODEL, customer_ids)
    if not raw:
        return 0
    ctx = scoring_context(conn, settings=settings)
    rows = score_states([CustomerState.from_json(d) for d in raw], ctx)
    return cust_repo.save_scores(conn, rows)


def score_everyone(conn: Conn, *, settings: Settings) -> int:
    """Score all customers with the current model and fits."""
    return score_all(conn, scoring_context(conn, settings=settings))


def refit_clv(conn: Conn, *, settings: Settings) -> list[dict[str, Any]]:
    """Refit BG/NBD + Gamma-Gamma (all customers and per store) as of the model clock."""
    loaded = model_cache().get(conn)
    fits = fit_clv(conn, at=as_of(loaded), horizon_weeks=settings.ml_clv_horizon_weeks)
    return [
        {
            "scope": f.scope,
            "bgnbd": f.bgnbd.as_dict(),
            "gamma_gamma": f.gamma_gamma.as_dict() if f.gamma_gamma else None,
            "reference_clv": f.reference_clv,
        }
        for f in fits
    ]


def resolve_customer_id(conn: Conn, customer_id: str) -> str:
    """Follow CRM merges for numeric profile ids (an absorbed id answers for its survivor)."""
    if not (customer_id.isascii() and customer_id.isdigit()) or len(customer_id) > 18:
        return customer_id
    row = conn.execute("SELECT crm_resolve_profile(%s::bigint)", (customer_id,)).fetchone()
    return str(row[0]) if row and row[0] is not None else customer_id


def customer_prediction(conn: Conn, *, customer_id: str, settings: Settings) -> dict[str, Any]:
    """Fresh churn probability, CLV, health, reasons and next best action of one customer."""
    if not customer_id or len(customer_id) > 128 or not customer_id.isprintable():
        raise InvalidEventError("customer_id must be 1-128 printable characters")
    cid = resolve_customer_id(conn, customer_id)
    raw = cust_repo.load_states(conn, CHURN_MODEL, [cid])
    state = CustomerState.from_json(raw[0]) if raw else None
    if state is None or not state.has_purchased:
        raise ModelNotFoundError(f"no purchase history is known for customer '{customer_id}'")
    ctx = scoring_context(conn, settings=settings)
    (row,) = score_states([state], ctx)
    return row


def at_risk(
    conn: Conn,
    *,
    store_id: str | None,
    segment: str | None,
    min_churn: float,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Stored scores ranked by value at risk."""
    return cust_repo.at_risk(
        conn, store_id=store_id, segment=segment, min_churn=min_churn, limit=limit, offset=offset
    )


def model_status(conn: Conn, *, name: str) -> dict[str, Any]:
    """Version, samples seen, metrics, watermarks, recent versions and drift events of a model."""
    row = model_repo.load(conn, name)
    if row is None:
        raise ModelNotFoundError(f"model '{name}' has not been trained yet")
    return {
        "name": row.name,
        "kind": row.kind,
        "version": row.version,
        "samples_seen": row.samples_seen,
        "metrics": row.metrics,
        "watermarks": row.watermarks,
        "clock": row.clock,
        "updated_at": row.updated_at,
        "customers": cust_repo.count_customers(conn, name),
        "drift_events_total": model_repo.count_drift_events(conn, name),
        "drift_events": model_repo.drift_events(conn, name),
        "versions": [
            {"version": v, "samples_seen": n, "metrics": m, "created_at": at}
            for v, n, m, at in model_repo.versions(conn, name, limit=10)
        ],
    }


def list_models(conn: Conn) -> list[dict[str, Any]]:
    """Every stored model with its headline numbers."""
    return [
        {
            "name": r.name,
            "kind": r.kind,
            "version": r.version,
            "samples_seen": r.samples_seen,
            "metrics": r.metrics,
            "clock": r.clock,
            "updated_at": r.updated_at,
        }
        for r in model_repo.list_models(conn)
    ]


def reset_churn_model(conn: Conn, *, actor: str) -> dict[str, Any]:
    """Forget what the churn model learnt (keeps watermarks, customers and metrics history)."""
    with conn.transaction():
        loaded = load_model(conn, CHURN_MODEL)
        loaded.model.reset()
        version = save_model(conn, loaded)
        model_repo.add_drift_event(
            conn,
            model=CHURN_MODEL,
            version=version,
            sample=loaded.model.samples_seen,
            clock=datetime.fromtimestamp(loaded.model.clock, UTC) if loaded.model.clock else None,
            error_before=None,
            reset=True,
        )
    log.warning("churn model reset", extra={"actor": actor, "version": version})
    return model_status(conn, name=CHURN_MODEL)
