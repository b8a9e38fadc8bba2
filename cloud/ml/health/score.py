"""Customer health: one 0-100 score from churn probability, value and engagement, with reasons.

health = 100 * (0.5 * (1 - churn) + 0.3 * value_index + 0.2 * engagement), where value_index =
clv / (clv + reference_clv) is 0.5 for a customer worth the scope's mean CLV. Reasons name the
factors that pull the score down (or up) in words a marketer can act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

W_CHURN = 0.5
W_VALUE = 0.3
W_ENGAGEMENT = 0.2
HIGH_RISK = 0.6
MEDIUM_RISK = 0.4


class Segment(StrEnum):
    """Lifecycle segment used to slice at-risk lists."""

    NEW = "new"
    ACTIVE = "active"
    AT_RISK = "at_risk"
    LAPSED = "lapsed"


@dataclass(frozen=True)
class HealthInputs:
    """What the health score is computed from."""

    churn_probability: float
    clv: float | None
    reference_clv: float
    engagement: float
    recency_days: float
    mean_gap_days: float
    purchase_days: int
    horizon_days: float


@dataclass(frozen=True)
class Health:
    """The health score with its components and reasons."""

    score: float
    value_index: float
    segment: Segment
    reasons: list[str]


def value_index(clv: float | None, reference: float) -> float:
    """0..1, 0.5 at the reference CLV; 0.5 when the CLV is unknown."""
    if clv is None or not math.isfinite(clv) or reference <= 0:
        return 0.5
    return max(clv, 0.0) / (max(clv, 0.0) + reference)


def segment(inp: HealthInputs) -> Segment:
    """Lifecycle segment: lapsed beyond the churn horizon, at risk, new, or active."""
    if inp.recency_days > inp.horizon_days:
        return Segment.LAPSED
    if inp.churn_probability >= HIGH_RISK:
        return Segment.AT_RISK
    if inp.purchase_days <= 1:
        return Segment.NEW
    return Segment.ACTIVE


def health(inp: HealthInputs) -> Health:
    """Score, value index, segment and the reasons behind them."""
    vi = value_index(inp.clv, inp.reference_clv)
    eng = min(max(inp.engagement, 0.0), 1.0)
    p = min(max(inp.churn_probability, 0.0), 1.0)
    score = 100.0 * (W_CHURN * (1 - p) + W_VALUE * vi + W_ENGAGEMENT * eng)
    return Health(round(score, 2), vi, segment(inp), _reasons(inp, p, vi, eng))


def _reasons(inp: HealthInputs, p: float, vi: float, eng: float) -> list[str]:
    out: list[str] = []
    if p >= HIGH_RISK:
        out.append(f"high churn risk: {p:.0%} chance of no purchase in the next horizon")
    elif p >= MEDIUM_RISK:
        out.append(f"moderate churn risk ({p:.0%})")
    else:
        out.append(f"low churn risk ({p:.0%})")
    if inp.purchase_days > 1 and inp.recency_days > 1.5 * inp.mean_gap_days + 7:
        out.append(
            f"overdue: {inp.recency_days:.0f} days since the last purchase, "
            f"usually every {inp.mean_gap_days:.0f} days"
        )
    if inp.clv is not None and math.isfinite(inp.clv):
        ratio = inp.clv / inp.reference_clv if inp.reference_clv > 0 else 0.0
        label = "high" if vi >= 0.6 else "low" if vi < 0.4 else "average"
        out.append(f"{label} value: expected value {inp.clv:.2f}, {ratio:.1f}x the average")
    if eng < 0.2:
        out.append("low engagement: few recent visits, opens or purchases")
    elif eng >= 0.6:
        out.append("highly engaged recently")
    return out
