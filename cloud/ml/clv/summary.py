"""RFM summaries (x, t_x, T, zbar in weeks) and CLV predictions from fitted BG/NBD + Gamma-Gamma."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cloud.ml.churn.features import DAY, CustomerState
from cloud.ml.clv import bgnbd, gammagamma
from cloud.ml.clv.bgnbd import Array, BgNbdParams
from cloud.ml.clv.gammagamma import GammaGammaParams
from cloud.ml.errors import FitError

WEEK = 7 * DAY


@dataclass(frozen=True)
class Summary:
    """Column arrays of the RFM summary of a set of customers, in weeks from first purchase day."""

    x: Array
    t_x: Array
    big_t: Array
    zbar: Array


def summarise(states: Sequence[CustomerState], as_of: float) -> Summary:
    """Summaries at `as_of` (epoch s); purchases are counted once per day, as in the literature."""
    x = np.empty(len(states))
    t_x = np.empty(len(states))
    big_t = np.empty(len(states))
    zbar = np.zeros(len(states))
    for i, s in enumerate(states):
        first = (s.first_at // DAY) * DAY
        x[i] = max(s.purchase_days - 1, 0)
        t_x[i] = max(s.last_day * DAY - first, 0.0) / WEEK
        big_t[i] = max(as_of - first, t_x[i] * WEEK) / WEEK
        if x[i] > 0:
            zbar[i] = s.repeat_total / x[i]
    return Summary(x, t_x, big_t, zbar)


@dataclass(frozen=True)
class ClvFit:
    """Fitted BG/NBD and (optionally) Gamma-Gamma parameters of one scope."""

    scope: str
    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams | None
    reference_clv: float = 0.0

    def with_reference(self, reference_clv: float) -> ClvFit:
        """A copy carrying the scope's mean CLV (the health score's value reference)."""
        return replace(self, reference_clv=reference_clv)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClvFit:
        """Rebuild from an `ml_clv_fits` row."""
        b = row["bgnbd"]
        g = row.get("gamma_gamma")
        return cls(
            scope=row["scope"],
            bgnbd=BgNbdParams(
                b["r"], b["alpha"], b["a"], b["b"], b["log_likelihood"], int(b["n_customers"])
            ),
            gamma_gamma=GammaGammaParams(
                g["p"], g["q"], g["gamma"], g["log_likelihood"], int(g["n_customers"])
            )
            if g
            else None,
            reference_clv=float(b.get("reference_clv", 0.0)),
        )


@dataclass(frozen=True)
class ClvPrediction:
    """Per-customer CLV outputs over a horizon (arrays aligned with the summary)."""

    p_alive: Array
    expected_purchases: Array
    expected_spend: Array
    clv: Array


def fit_summary(scope: str, summary: Summary) -> ClvFit:
    """Fit BG/NBD (always) and Gamma-Gamma (when enough repeat buyers) on a summary."""
    params = bgnbd.fit(summary.x, summary.t_x, summary.big_t)
    gg: GammaGammaParams | None
    try:
        gg = gammagamma.fit(summary.x, summary.zbar)
    except FitError:  # too few repeat buyers: spend stays unknown, frequency still useful
        gg = None
    return ClvFit(scope, params, gg)


def predict(fit: ClvFit, summary: Summary, horizon_weeks: float) -> ClvPrediction:
    """P(alive), expected purchases and spend, and CLV (undiscounted) over the horizon."""
    alive = bgnbd.probability_alive(fit.bgnbd, summary.x, summary.t_x, summary.big_t)
    exp_n = bgnbd.expected_purchases(
        fit.bgnbd, horizon_weeks, summary.x, summary.t_x, summary.big_t
    )
    if fit.gamma_gamma is not None:
        spend = gammagamma.expected_spend(fit.gamma_gamma, summary.x, summary.zbar)
    else:
        spend = np.where(summary.x > 0, summary.zbar, np.nan)
    clv: Array = exp_n * spend
    return ClvPrediction(alive, exp_n, spend, clv)
