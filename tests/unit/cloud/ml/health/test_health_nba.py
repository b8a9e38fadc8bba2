"""Health score, segments and the next-best-action rule set."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cloud.ml.health.nba import RULES, ActionKind, next_best_action
from cloud.ml.health.score import HealthInputs, Segment, health, value_index

BASE = HealthInputs(
    churn_probability=0.2,
    clv=100.0,
    reference_clv=100.0,
    engagement=0.5,
    recency_days=10.0,
    mean_gap_days=20.0,
    purchase_days=4,
    horizon_days=182.0,
)


def test_score_combines_risk_value_and_engagement() -> None:
    h = health(BASE)
    assert h.score == pytest.approx(100 * (0.5 * 0.8 + 0.3 * 0.5 + 0.2 * 0.5))
    assert health(replace(BASE, churn_probability=0.9)).score < h.score
    assert health(replace(BASE, clv=400.0)).score > h.score
    assert health(replace(BASE, engagement=0.0)).score < h.score


@pytest.mark.parametrize(
    ("clv", "expected"), [(None, 0.5), (float("nan"), 0.5), (0.0, 0.0), (100.0, 0.5), (300.0, 0.75)]
)
def test_value_index(clv: float | None, expected: float) -> None:
    assert value_index(clv, 100.0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("changes", "segment"),
    [
        ({}, Segment.ACTIVE),
        ({"purchase_days": 1}, Segment.NEW),
        ({"churn_probability": 0.7}, Segment.AT_RISK),
        ({"recency_days": 200.0, "churn_probability": 0.9}, Segment.LAPSED),
    ],
)
def test_segments(changes: dict[str, float], segment: Segment) -> None:
    assert health(replace(BASE, **changes)).segment is segment  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "kind", "rule"),
    [
        ({"churn_probability": 0.8, "clv": 400.0}, ActionKind.OFFER, "valuable_at_risk"),
        ({"churn_probability": 0.5, "clv": 10.0}, ActionKind.POINTS_BONUS, "loyal_at_risk"),
        (
            {"churn_probability": 0.5, "purchase_days": 2, "engagement": 0.1},
            ActionKind.MESSAGE,
            "disengaged",
        ),
        ({"purchase_days": 1}, ActionKind.MESSAGE, "second_purchase"),
        ({}, ActionKind.NONE, "healthy"),
    ],
)
def test_next_best_action_rules(changes: dict[str, float], kind: ActionKind, rule: str) -> None:
    inputs = replace(BASE, **changes)  # type: ignore[arg-type]
    action = next_best_action(inputs, health(inputs))
    assert (action.kind, action.rule) == (kind, rule)
    assert action.reason and action.as_dict()["kind"] == kind.value


def test_rules_have_unique_names() -> None:
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))


def test_reasons_explain_overdue_and_high_risk() -> None:
    h = health(replace(BASE, churn_probability=0.8, recency_days=90.0))
    text = " ".join(h.reasons)
    assert "high churn risk: 80%" in text and "overdue: 90 days" in text
