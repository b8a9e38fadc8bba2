"""The churn model persisted in PostgreSQL: round trip, versions across processes, exactly-once
learning from the CRM's transactions, and bad input that never reaches the model."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from cloud.crm.errors import CrmInvalidInputError
from cloud.db.repositories import ml_models as model_repo
from cloud.ml.churn.consumer import consume_all, consume_batch
from cloud.ml.churn.engine import ChurnConfig, ChurnEngine, InMemoryCustomerStore
from cloud.ml.churn.model import ChurnModel
from cloud.ml.churn.store import ModelCache, load_model, save_model
from cloud.ml.errors import ModelVersionConflictError
from cloud.ml.events import Purchase

from .conftest import START, Buy

CFG = ChurnConfig(horizon_days=30, snapshot_every_days=10, max_idle_snapshots=3)
X = {"recency_days": 12.0, "log_tx": 1.0, "repeat": 1.0}


def _history(rng: random.Random, customers: int = 12, days: int = 120) -> list[tuple[float, str]]:
    """(day, customer) purchases: half the customers buy weekly, half once."""
    out = []
    for i in range(customers):
        first = rng.uniform(0, 30)
        if i % 2:
            out += [(first + 7 * k, f"C{i}") for k in range(int((days - first) // 7))]
        else:
            out.append((first, f"C{i}"))
    return sorted(out)


def _trained(rng: random.Random) -> ChurnModel:
    model = ChurnModel(learning_rate=0.05)
    for _ in range(300):
        x = {"recency_days": rng.uniform(0, 60)}
        model.learn(x, x["recency_days"] > 30, model.predict_proba(x))
    return model


def test_round_trip_keeps_predictions_metrics_and_version(ml_conn: psycopg.Connection[Any]) -> None:
    loaded = load_model(ml_conn, "churn", create=_trained(random.Random(1)))
    before = loaded.model.predict_proba(X)
    assert save_model(ml_conn, loaded) == 1
    ml_conn.commit()
    again = load_model(ml_conn, "churn")
    assert again.version == 1
    assert again.model.predict_proba(X) == before
    assert again.model.metrics() == loaded.model.metrics()
    row = model_repo.load(ml_conn, "churn")
    assert row is not None and row.samples_seen == 300
    assert row.metrics["roc_auc"] == loaded.model.metrics()["roc_auc"]


def test_a_stale_writer_gets_a_conflict(ml_conn: psycopg.Connection[Any]) -> None:
    save_model(ml_conn, load_model(ml_conn, "churn", create=ChurnModel()))
    a = load_model(ml_conn, "churn")
    b = load_model(ml_conn, "churn")
    assert save_model(ml_conn, a) == 2
    with pytest.raises(ModelVersionConflictError, match="version 1"):
        save_model(ml_conn, b)


def test_two_processes_see_the_same_model_version(ml_db: str) -> None:
    with psycopg.connect(ml_db) as conn:
        loaded = load_model(conn, "churn", create=_trained(random.Random(2)))
        save_model(conn, loaded)
        conn.commit()
        cache = ModelCache("churn")
        mine = cache.get(conn)
    script = (
        "import json, sys, psycopg\n"
        "from cloud.ml.churn.store import ModelCache\n"
        "with psycopg.connect(sys.argv[1]) as c:\n"
        "    m = ModelCache('churn').get(c)\n"
        f"    print(json.dumps([m.version, m.model.predict_proba({X!r})]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, ml_db], capture_output=True, text=True, check=True
    )
    version, proba = json.loads(out.stdout)
    assert version == mine.version == 1
    assert proba == mine.model.predict_proba(X)
    # the other process saves a new version; this process's cache follows it
    with psycopg.connect(ml_db) as other:
        newer = load_model(other, "churn")
        newer.model.learn({"recency_days": 50.0}, True, 0.5)
        save_model(other, newer)
    with psycopg.connect(ml_db) as conn:
        assert cache.get(conn).version == 2
        assert cache.get(conn).model.samples_seen == 301


def test_learning_in_batches_across_reloads_equals_one_uninterrupted_run(
    ml_conn: psycopg.Connection[Any], buy: Buy
) -> None:
    history = _history(random.Random(3))
    ids = {c: str(buy(c, day)) for day, c in history}
    # reference: the same events through one in-memory engine that never restarts
    ref = ChurnEngine(ChurnModel(), InMemoryCustomerStore(), CFG)
    for day, c in history:
        ref.apply(Purchase(ids[c], START + timedelta(days=day), 20.0, "ml-store-1"))
    # persisted: small batches, each one loading the model from PostgreSQL and saving it back
    results = consume_all(ml_conn, config=CFG, new_model=ChurnModel(), limit=7)
    assert sum(r.applied for r in results) == len(history)
    assert len(results) > 5  # really restarted from the database many times
    stored = load_model(ml_conn, "churn")
    assert stored.model.samples_seen == ref.model.samples_seen > 20
    assert stored.model.metrics() == ref.model.metrics()
    assert stored.model.predict_proba(X) == pytest.approx(ref.model.predict_proba(X), abs=1e-12)
    assert stored.version == len([r for r in results if r.read])
    # nothing new: a second pass learns nothing (exactly once)
    again = consume_batch(ml_conn, config=CFG, new_model=ChurnModel())
    assert (again.read, again.version) == (0, stored.version)


def test_future_dated_and_negative_transactions_never_reach_the_model(
    ml_conn: psycopg.Connection[Any], buy: Buy
) -> None:
    with pytest.raises(CrmInvalidInputError, match="wrong sign"):
        buy("bad", 1, amount="-5.00")  # the CRM refuses a sale with a negative amount
    buy("ok", 1)
    buy("ok", 2, amount="-5.00", kind="return")  # a refund: negative amount
    buy("ok", 365 * 20)  # twenty years in the future
    res = consume_batch(ml_conn, config=CFG, new_model=ChurnModel())
    assert (res.read, res.applied, res.rejected) == (3, 1, 2)
    rejected = model_repo.rejected_events(ml_conn, "crm_transactions")
    reasons = sorted(r["reason"] for r in rejected)
    assert "is negative" in reasons[0] and "in the future" in reasons[1]
    stored = load_model(ml_conn, "churn")
    state_rows = ml_conn.execute("SELECT state FROM ml_customers").fetchall()
    assert [r[0]["n_tx"] for r in state_rows] == [1]
    assert stored.model.clock < (START + timedelta(days=3)).timestamp()
    # a retry does not count the same rejects twice
    assert consume_batch(ml_conn, config=CFG, new_model=ChurnModel()).read == 0
    assert len(model_repo.rejected_events(ml_conn, "crm_transactions")) == 2


def test_concurrent_consumers_do_not_learn_twice(ml_db: str, buy: Buy) -> None:
    for day in range(5):
        buy("C1", day * 3)
    with psycopg.connect(ml_db) as a, psycopg.connect(ml_db) as b:
        a.execute("BEGIN")
        a.execute("SELECT pg_advisory_xact_lock(hashtext('ml:churn'))")
        busy = consume_batch(b, config=CFG, new_model=ChurnModel())
        assert busy.busy and busy.read == 0
        a.rollback()
        done = consume_batch(b, config=CFG, new_model=ChurnModel())
        assert done.applied == 5
    with psycopg.connect(ml_db) as c:
        state = c.execute("SELECT state FROM ml_customers").fetchone()
        assert state is not None and state[0]["n_tx"] == 5


def test_a_crm_merge_folds_the_absorbed_customers_state(
    ml_conn: psycopg.Connection[Any], buy: Buy
) -> None:
    a = buy("A", 0)
    b = buy("B", 5, amount="30.00")
    assert buy("A", 10, email="same@example.com") == a
    consume_batch(ml_conn, config=CFG, new_model=ChurnModel())
    # B shows the same e-mail: the CRM merges B into A (the older profile survives)
    assert buy("B", 20, email="same@example.com") == a
    res = consume_batch(ml_conn, config=CFG, new_model=ChurnModel())
    assert res.applied == 1
    rows = dict(ml_conn.execute("SELECT customer_id, state FROM ml_customers").fetchall())
    assert set(rows) == {str(a)}  # the absorbed profile's state was folded and removed
    state = rows[str(a)]
    assert state["n_tx"] == 4 and state["total"] == pytest.approx(90.0)
    assert str(b) not in rows


def test_the_clock_ticks_without_events_so_labels_still_resolve(
    ml_conn: psycopg.Connection[Any], buy: Buy
) -> None:
    from cloud.core.settings import Settings
    from cloud.ml import service

    buy("quiet", 0)
    settings = Settings(database_url="postgresql://unused", ml_churn_horizon_days=30)
    first = service.learn(ml_conn, settings=settings)
    assert first.applied == 1 and first.samples_seen == 0
    again = service.learn(ml_conn, settings=settings)  # nothing new: tick to now - 1 day
    assert again.read == 0
    model = load_model(ml_conn, "churn").model
    assert model.clock > (START + timedelta(days=365)).timestamp()
    # the purchase snapshot and its 6 idle snapshots have all passed their horizon: churned
    assert model.samples_seen == 7 and model.positives == 7


def test_check_ins_and_message_engagement_reach_the_features(
    ml_conn: psycopg.Connection[Any], buy: Buy
) -> None:
    from cloud.crm.touchpoints import record_touchpoint

    pid = buy("V1", 0)
    for day, channel, event in [
        (1, "store_visit", "check_in"),
        (2, "store_visit", "check_in"),
        (3, "email", "sent"),
        (4, "email", "opened"),
        (5, "email", "clicked"),
        (6, "web", "page_view"),  # not a churn feature: skipped, not rejected
    ]:
        record_touchpoint(
            ml_conn,
            channel=channel,
            event=event,
            identifiers={"pos_customer_id": "V1"},
            occurred_at=START + timedelta(days=day),
            store_id="ml-store-1" if channel == "store_visit" else None,
        )
    ml_conn.commit()
    res = consume_batch(ml_conn, config=CFG, new_model=ChurnModel())
    assert (res.applied, res.skipped, res.rejected) == (6, 1, 0)
    row = ml_conn.execute(
        "SELECT state FROM ml_customers WHERE customer_id = %s", (str(pid),)
    ).fetchone()
    assert row is not None
    state = row[0]
    assert (state["visits"], state["sent"], state["opened"], state["clicked"]) == (2, 1, 1, 1)
    assert state["ew_engaged"] > 2.5 and state["ew_visits"] > 1.9


def _insert_sale(conn: psycopg.Connection[Any], profile: int, receipt: str, day: float) -> None:
    conn.execute(
        "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id, occurred_at,"
        " currency, total_amount, kind) SELECT profile_id, record_id, 'ml-store-1', %s, %s,"
        " 'USD', 20, 'sale' FROM crm_transactions WHERE profile_id = %s LIMIT 1",
        (receipt, START + timedelta(days=day), profile),
    )


def test_a_sale_committed_after_a_later_id_is_still_learnt(ml_db: str, buy: Buy) -> None:
    profile = buy("C1", 0)
    with psycopg.connect(ml_db) as slow, psycopg.connect(ml_db) as fast:
        _insert_sale(slow, profile, "slow", 1)  # takes the next id, commits late
        _insert_sale(fast, profile, "fast", 2)
        fast.commit()
        with psycopg.connect(ml_db) as c:
            first = consume_batch(c, config=CFG, new_model=ChurnModel())
            assert first.applied == 1  # stops before the id an open transaction may still fill
            waiting = consume_batch(c, config=CFG, new_model=ChurnModel())
            assert (waiting.read, waiting.busy) == (0, True)  # "try later", not "drained"
            slow.commit()
            second = consume_batch(c, config=CFG, new_model=ChurnModel())
            assert second.applied == 2
            state = c.execute("SELECT state FROM ml_customers").fetchone()
            assert state is not None and state[0]["n_tx"] == 3


def test_an_aborted_sale_leaves_a_gap_that_does_not_stall_learning(ml_db: str, buy: Buy) -> None:
    profile = buy("C1", 0)
    with psycopg.connect(ml_db) as aborted:
        _insert_sale(aborted, profile, "never", 1)
        aborted.rollback()
    buy("C1", 2)
    with psycopg.connect(ml_db) as c, psycopg.connect(ml_db) as busy_elsewhere:
        busy_elsewhere.execute("UPDATE stores SET name = name")  # writes another table, open
        assert consume_batch(c, config=CFG, new_model=ChurnModel()).applied == 2


def _insert_merge(
    conn: psycopg.Connection[Any], survivor: int, absorbed: int, undone: bool
) -> None:
    conn.execute(
        "INSERT INTO crm_merges (survivor_id, absorbed_id, record_ids, reason, undone_at)"
        " VALUES (%s, %s, '{}', 'test', CASE WHEN %s THEN now() END)",
        (survivor, absorbed, undone),
    )


def test_a_merge_committed_after_a_later_merge_is_still_folded(ml_db: str, buy: Buy) -> None:
    a, b = buy("A", 0), buy("B", 5)
    with psycopg.connect(ml_db) as c:
        consume_batch(c, config=CFG, new_model=ChurnModel())
        c.commit()
        with psycopg.connect(ml_db) as slow, psycopg.connect(ml_db) as fast:
            _insert_merge(slow, a, b, undone=False)  # takes merge id 1, commits late
            _insert_merge(fast, b, a, undone=True)
            fast.commit()
            buy("C", 6)  # so the batch saves its watermarks
            consume_batch(c, config=CFG, new_model=ChurnModel())
            c.commit()
            slow.commit()
        consume_batch(c, config=CFG, new_model=ChurnModel())
        c.commit()
        rows: dict[str, Any] = dict(
            c.execute("SELECT customer_id, state FROM ml_customers").fetchall()
        )
    assert str(b) not in rows and rows[str(a)]["n_tx"] == 2  # B was folded into A
