"""The churn learning loop on synthetic customers with a known churn behaviour."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from cloud.ml.churn.engine import ChurnConfig, ChurnEngine, InMemoryCustomerStore
from cloud.ml.churn.features import DAY
from cloud.ml.churn.model import ChurnModel
from cloud.ml.events import Purchase

START = datetime(2025, 1, 1, tzinfo=UTC)
CFG = ChurnConfig(horizon_days=60, snapshot_every_days=20, max_idle_snapshots=3)


def _engine() -> ChurnEngine:
    return ChurnEngine(ChurnModel(learning_rate=0.02), InMemoryCustomerStore(), CFG)


def _buy(engine: ChurnEngine, cid: str, day: float, amount: float = 10.0) -> float | None:
    return engine.apply(Purchase(cid, START + timedelta(days=day), amount, "s1"))


def test_a_silent_customer_is_labelled_churned_only_after_the_horizon() -> None:
    eng = _engine()
    _buy(eng, "gone", 0)
    eng.advance((START + timedelta(days=59)).timestamp())
    assert eng.model.samples_seen == 0  # horizon of the first snapshot not over yet
    eng.advance((START + timedelta(days=61)).timestamp())
    assert eng.model.samples_seen == 1 and eng.model.positives == 1
    eng.advance((START + timedelta(days=200)).timestamp())
    # purchase snapshot + 3 idle snapshots (days 20, 40, 60), all churned
    assert eng.model.samples_seen == 4 and eng.model.positives == 4
    state = eng.store.get("gone")
    assert state is not None and state.pending == [] and eng.next_due(state) is None


def test_a_returning_customer_is_labelled_stayed_but_learnt_at_the_horizon() -> None:
    eng = _engine()
    _buy(eng, "loyal", 0)
    _buy(eng, "loyal", 30)
    assert eng.model.samples_seen == 0  # label known (stayed), learning waits for the horizon
    state = eng.store.get("loyal")
    assert state is not None and [s.y for s in state.pending] == [False, False, None]
    eng.advance((START + timedelta(days=85)).timestamp())
    assert eng.model.samples_seen == 2 and eng.model.positives == 0  # days 0 and 20: stayed
    eng.advance((START + timedelta(days=95)).timestamp())
    # the day-30 purchase snapshot saw no purchase by day 90: churned
    assert eng.model.samples_seen == 3 and eng.model.positives == 1


def test_the_model_learns_to_separate_loyal_from_one_off_customers() -> None:
    rng = random.Random(7)
    eng = _engine()
    events = []
    for i in range(400):
        first = rng.uniform(0, 300)
        if i % 2:
            events += [(first + k * rng.uniform(7, 15), f"loyal{i}") for k in range(80)]
        else:
            events.append((first, f"once{i}"))
    for day, cid in sorted(events):
        if day < 700:
            _buy(eng, cid, day)
    eng.advance((START + timedelta(days=700)).timestamp())
    metrics = eng.model.metrics()
    assert metrics["samples_seen"] > 1000
    assert metrics["roc_auc"] is not None and metrics["roc_auc"] > 0.9
    t = (START + timedelta(days=320)).timestamp()
    loyal = eng.store.get("loyal1")
    once = eng.store.get("once0")
    assert loyal is not None and once is not None
    assert eng.score(once, t) > eng.score(loyal, max(t, loyal.last_at))


def test_in_memory_store_returns_each_due_state_once() -> None:
    eng = _engine()
    _buy(eng, "a", 0)
    store = eng.store
    assert isinstance(store, InMemoryCustomerStore)
    due = list(store.due((START + timedelta(days=30)).timestamp()))
    assert [s.customer_id for s in due] == ["a"]
    assert list(store.due((START + timedelta(days=30)).timestamp())) == []
    assert DAY == 86_400.0
