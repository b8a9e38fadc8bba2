"""Revenue cohorts add crm_events.revenue and POS transactions (one currency, reversals out,
returns negative) from the first event on, per period."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg

from cloud.crm.analytics import retention
from cloud.crm.analytics.schemas import EventMatcher, RetentionQuery
from tests.integration.cloud.analytics.world import BASE, World


def _sale(conn: psycopg.Connection[Any], pid: int, store: str, n: int, days: float,
          total: str, currency: str = "EUR", reversed_: bool = False) -> None:  # fmt: skip
    rec = conn.execute(
        "INSERT INTO crm_records (profile_id, source) VALUES (%s, 'pos') RETURNING id", (pid,)
    ).fetchone()
    assert rec is not None
    conn.execute(
        "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id,"
        " occurred_at, currency, total_amount, kind, reversed_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)",
        (pid, rec[0], store, f"r{n}", BASE + timedelta(days=days), currency, Decimal(total),
         "return" if total.startswith("-") else "sale", reversed_),
    )  # fmt: skip


def test_revenue_from_events_and_transactions(conn: psycopg.Connection[Any]) -> None:
    world = World(conn)
    world.add_people(["p", "m"])  # the second is merged into the first
    store = f"{world.prefix}-s"
    conn.execute("INSERT INTO stores (id, name) VALUES (%s, 'analytics')", (store,))
    pid = int(world.people[0][1])
    merged = int(world._raw[1][0] or 0)
    world.add(0, "signup", BASE + timedelta(hours=1))
    world.add(1, "buy", BASE + timedelta(hours=2), revenue=Decimal("5.00"))  # day 0
    world.add(0, "buy", BASE + timedelta(days=1, hours=2), revenue=Decimal("7.50"))  # day 1
    _sale(conn, pid, store, 1, 0.5, "30.00")  # day 0 (12:00, after the 01:00 signup)
    _sale(conn, merged, store, 2, 1.5, "-10.00")  # day 1, a return, of the merged profile
    _sale(conn, pid, store, 3, 1.5, "99.00", currency="USD")  # another currency
    _sale(conn, pid, store, 4, 1.5, "50.00", reversed_=True)  # reversed
    _sale(conn, pid, store, 5, 0.01, "80.00")  # before the first event
    q = RetentionQuery(
        start=BASE, end=BASE + timedelta(days=7),
        start_event=EventMatcher(event=world.name("signup")),
        return_event=EventMatcher(event=world.name("buy")), periods=3, revenue="both",
    )  # fmt: skip
    (cohort,) = retention.retention(conn, q).cohorts
    assert cohort.size == 1
    assert [(p.retained, p.retained_unbounded, Decimal(p.revenue)) for p in cohort.periods] == [
        (1, 1, Decimal("35.00")), (1, 1, Decimal("-2.50")), (0, 0, Decimal(0)),
    ]  # fmt: skip
    only_pos = retention.retention(conn, q.model_copy(update={"revenue": "transactions"}))
    assert [Decimal(p.revenue) for p in only_pos.cohorts[0].periods] == [30, -10, 0]
