"""Incremental customer state and churn features."""

from __future__ import annotations

import json
import math

import pytest

from cloud.ml.churn.features import (
    DAY,
    CustomerState,
    Snapshot,
    add_engagement,
    add_purchase,
    add_visit,
    engagement_level,
    features_at,
    merge_states,
)
from cloud.ml.events import EngagementKind

T0 = 1_000 * DAY


def _state() -> CustomerState:
    s = CustomerState("c1")
    add_purchase(s, T0, 10.0, "s1")
    add_purchase(s, T0 + 3600, 5.0, "s1")  # same day: one purchase day, no repeat spend
    add_purchase(s, T0 + 10 * DAY, 30.0, "s2")
    add_purchase(s, T0 + 20 * DAY, 20.0, "s2")
    add_purchase(s, T0 + 21 * DAY, 1.0, "s2")
    return s


def test_counts_days_repeat_spend_and_home_store() -> None:
    s = _state()
    assert (s.n_tx, s.purchase_days, s.total) == (5, 4, 66.0)
    assert s.repeat_total == pytest.approx(51.0)
    assert s.home_store == "s2"
    assert s.last_at == T0 + 21 * DAY


def test_features_grow_with_recency_and_reflect_habits() -> None:
    s = _state()
    now = features_at(s, s.last_at)
    later = features_at(s, s.last_at + 60 * DAY)
    assert now["recency_days"] == 0.0 and later["recency_days"] == pytest.approx(60.0)
    assert later["overdue"] > now["overdue"]
    assert later["recent_rate"] < now["recent_rate"]
    assert now["log_mean_gap"] == pytest.approx(math.log(8.0))  # 3 gaps over 21 days: 7
    assert now["repeat"] == 1.0


def test_visits_and_engagement_raise_engagement_features() -> None:
    s = _state()
    before = features_at(s, s.last_at + DAY)
    add_visit(s, s.last_at + DAY, "s2")
    for kind in (EngagementKind.SENT, EngagementKind.OPENED, EngagementKind.CLICKED):
        add_engagement(s, s.last_at + DAY, kind)
    after = features_at(s, s.last_at + DAY)
    assert after["recent_visits"] > before["recent_visits"] == 0.0
    assert after["open_rate"] > before["open_rate"]
    assert after["recent_engagement"] > 0.0
    assert 0.0 < engagement_level(s, s.last_at + DAY) <= 1.0


def test_state_round_trips_through_json() -> None:
    s = _state()
    s.pending.append(Snapshot(at=T0, x={"a": 1.0}, p=0.3, y=False))
    again = CustomerState.from_json(json.loads(json.dumps(s.to_json())))
    assert again == s


def test_merging_two_customers_adds_their_histories() -> None:
    a = _state()
    b = CustomerState("c2")
    add_purchase(b, T0 - 5 * DAY, 7.0, "s3")
    add_purchase(b, T0 + 30 * DAY, 8.0, "s3")
    add_visit(b, T0 + 31 * DAY, "s3")
    b.pending.append(Snapshot(at=T0 + 30 * DAY, x={}, p=0.5))
    m = merge_states(a, b)
    assert m.customer_id == "c1"
    assert (m.n_tx, m.purchase_days, m.total) == (7, 6, 81.0)
    assert m.first_at == T0 - 5 * DAY and m.last_at == T0 + 30 * DAY
    assert m.last_amount == 8.0 and m.visits == 1
    assert m.stores == {"s1": 2, "s2": 3, "s3": 2}
    assert [s.at for s in m.pending] == [T0 + 30 * DAY]
    assert merge_states(a, CustomerState("empty")).n_tx == a.n_tx
