"""Scoring customers: churn probability, CLV, health, segment, reasons and next best action.

Used by the beat task that scores everyone, by the on-demand API, and by the CLV fit command.
All scores are "as of" the churn model's clock (the latest event time learnt), so a replay of
historical data is scored at its own time, and live data at (about) now.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from cloud.db.repositories import ml_customers as repo
from cloud.ml.churn.engine import ChurnConfig
from cloud.ml.churn.features import DAY, CustomerState, engagement_level, features_at
from cloud.ml.churn.store import CHURN_MODEL, LoadedModel
from cloud.ml.clv.summary import ClvFit, fit_summary, predict, summarise
from cloud.ml.health.nba import next_best_action
from cloud.ml.health.score import HealthInputs, health

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
ALL = "all"
MIN_STORE_CUSTOMERS = 200


@dataclass(frozen=True)
class ScoringContext:
    """Everything a score needs besides the customer."""

    loaded: LoadedModel
    fits: dict[str, ClvFit]
    config: ChurnConfig
    horizon_weeks: float
    as_of: float


def as_of(loaded: LoadedModel) -> float:
    """The model clock, or now when the model has seen no events."""
    return loaded.model.clock or datetime.now(UTC).timestamp()


def load_fits(conn: Conn) -> dict[str, ClvFit]:
    """Stored CLV fits by scope."""
    return {scope: ClvFit.from_row(row) for scope, row in repo.clv_fits(conn).items()}


def score_states(states: Sequence[CustomerState], ctx: ScoringContext) -> list[dict[str, Any]]:
    """Score rows (dicts keyed like ml_customer_scores) for customers with a purchase."""
    states = [s for s in states if s.has_purchased]
    summary = summarise(states, ctx.as_of)
    clv_cols = _clv_columns(states, summary, ctx)
    rows = []
    for i, state in enumerate(states):
        rows.append(_score_row(state, ctx, {k: v[i] for k, v in clv_cols.items()}))
    return rows


def _clv_columns(
    states: Sequence[CustomerState], summary: Any, ctx: ScoringContext
) -> dict[str, Any]:
    n = len(states)
    cols = {
        k: np.full(n, np.nan) for k in ("p_alive", "expected_purchases", "expected_spend", "clv")
    }
    cols["reference"] = np.full(n, np.nan)
    by_scope: dict[str, list[int]] = {}
    for i, state in enumerate(states):
        fit = ctx.fits.get(f"store:{state.home_store}") or ctx.fits.get(ALL)
        if fit is not None:
            by_scope.setdefault(fit.scope, []).append(i)
    for scope, idx in by_scope.items():
        fit = ctx.fits[scope]
        part = type(summary)(*(getattr(summary, f)[idx] for f in ("x", "t_x", "big_t", "zbar")))
        pred = predict(fit, part, ctx.horizon_weeks)
        cols["p_alive"][idx] = pred.p_alive
        cols["expected_purchases"][idx] = pred.expected_purchases
        cols["expected_spend"][idx] = pred.expected_spend
        cols["clv"][idx] = pred.clv
        cols["reference"][idx] = fit.reference_clv
    return cols


def _opt(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _score_row(state: CustomerState, ctx: ScoringContext, clv: dict[str, float]) -> dict[str, Any]:
    t = max(ctx.as_of, state.last_at)
    p = ctx.loaded.model.predict_proba(features_at(state, t))
    span = max(state.last_at - state.first_at, 0.0) / DAY
    inputs = HealthInputs(
        churn_probability=p,
        clv=_opt(clv["clv"]),
        reference_clv=_opt(clv["reference"]) or 0.0,
        engagement=engagement_level(state, t),
        recency_days=(t - state.last_at) / DAY,
        mean_gap_days=span / (state.purchase_days - 1) if state.purchase_days > 1 else 0.0,
        purchase_days=state.purchase_days,
        horizon_days=ctx.config.horizon_days,
    )
    h = health(inputs)
    value = inputs.clv if inputs.clv is not None else 0.0
    return {
        "customer_id": state.customer_id,
        "store_id": state.home_store,
        "segment": h.segment.value,
        "churn_probability": p,
        "p_alive": _opt(clv["p_alive"]),
        "expected_purchases": _opt(clv["expected_purchases"]),
        "expected_spend": _opt(clv["expected_spend"]),
        "clv": inputs.clv,
        "engagement": inputs.engagement,
        "health_score": h.score,
        "risk_value": p * max(value, 0.0),
        "reasons": h.reasons,
        "action": next_best_action(inputs, h).as_dict(),
        "model_version": ctx.loaded.version or 0,
        "as_of": datetime.fromtimestamp(ctx.as_of, UTC),
    }


def score_all(
    conn: Conn,
    ctx: ScoringContext,
    *,
    name: str = CHURN_MODEL,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Score every customer of the model and upsert ml_customer_scores; returns the count."""
    total = 0
    for batch in repo.iter_states(conn, name):
        rows = score_states([CustomerState.from_json(d) for d in batch], ctx)
        total += repo.save_scores(conn, rows)
        conn.commit()
        if progress:
            progress(total)
    log.info("scored customers", extra={"count": total, "model_version": ctx.loaded.version})
    return total


def fit_clv(
    conn: Conn,
    *,
    at: float,
    horizon_weeks: float,
    name: str = CHURN_MODEL,
    min_store_customers: int = MIN_STORE_CUSTOMERS,
) -> list[ClvFit]:
    """Fit BG/NBD + Gamma-Gamma on all customers and per store with enough customers; store them."""
    states = [
        CustomerState.from_json(d)
        for batch in repo.iter_states(conn, name)
        for d in batch
        if d.get("n_tx", 0) > 0
    ]
    groups: dict[str, list[CustomerState]] = {ALL: states}
    for s in states:
        if s.home_store:
            groups.setdefault(f"store:{s.home_store}", []).append(s)
    fits = []
    for scope, members in groups.items():
        if scope != ALL and len(members) < min_store_customers:
            continue
        summary = summarise(members, at)
        fit = fit_summary(scope, summary)
        pred = predict(fit, summary, horizon_weeks)
        fit = fit.with_reference(
            float(np.nanmean(pred.clv)) if np.isfinite(pred.clv).any() else 0.0
        )
        repo.save_clv_fit(
            conn,
            scope=scope,
            bgnbd={**fit.bgnbd.as_dict(), "reference_clv": fit.reference_clv},
            gamma_gamma=fit.gamma_gamma.as_dict() if fit.gamma_gamma else None,
            n_customers=len(members),
            as_of=datetime.fromtimestamp(at, UTC),
        )
        fits.append(fit)
    return fits
