"""The SQL that builds and counts journeys in one pass agrees with the plain Python reference
(one person at a time) on generated data: same paths, same counts and values, same time-decay
credits."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.crm.attribution import journeys as jr
from cloud.crm.attribution.models import Model, heuristic

T0 = datetime(2011, 6, 1, tzinfo=UTC)
CHANNELS = ["web", "email", "sms", "app"]

# per person: events (minutes after T0, is_sale, channel index, amount)
_event = st.tuples(
    st.integers(min_value=0, max_value=60 * 24 * 90),
    st.booleans(),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=1, max_value=500),
)
_people = st.lists(st.lists(_event, max_size=8, unique_by=lambda e: e[0]), min_size=1, max_size=6)


@pytest.fixture
def conn(database_url: str) -> Any:
    with psycopg.connect(database_url) as c:
        c.execute("INSERT INTO stores (id, name) VALUES ('aj-store', 'x') ON CONFLICT DO NOTHING")
        c.commit()
        yield c


def _load(c: psycopg.Connection[Any], people: list[list[tuple[int, bool, int, int]]]) -> None:
    for person in people:
        pid = c.execute(
            "INSERT INTO crm_profiles (attributes) VALUES ('{}') RETURNING id"
        ).fetchone()
        rid = c.execute(
            "INSERT INTO crm_records (profile_id, source) VALUES (%s, 'aj') RETURNING id", pid
        ).fetchone()
        assert pid is not None and rid is not None
        for minutes, sale, ch, amount in person:
            at = T0 + timedelta(minutes=minutes)
            if sale:
                c.execute(
                    "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id,"
                    " occurred_at, currency, total_amount) VALUES (%s, %s, 'aj-store',"
                    " gen_random_uuid()::text, %s, 'XAJ', %s)",
                    (pid[0], rid[0], at, amount),
                )
            else:
                c.execute(
                    "INSERT INTO crm_touchpoints (profile_id, record_id, channel, event,"
                    " occurred_at) VALUES (%s, %s, %s, 'click', %s)",
                    (pid[0], rid[0], CHANNELS[ch], at),
                )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_people, st.sampled_from([1, 7, 30]))
def test_sql_journeys_equal_the_python_reference(
    conn: psycopg.Connection[Any], people: list[list[tuple[int, bool, int, int]]], lookback: int
) -> None:
    try:
        conn.execute("ALTER TABLE crm_transactions DISABLE TRIGGER USER")
        _load(conn, people)
        period = jr.Period(T0 + timedelta(days=20), T0 + timedelta(days=90),
                           timedelta(days=lookback), "XAJ")  # fmt: skip
        reference = list(jr.stream(conn, period, jr.Dimension.CHANNEL))
        expected: dict[tuple[tuple[str, ...], bool], list[float]] = defaultdict(lambda: [0, 0.0])
        for j in reference:
            cell = expected[(tuple(t.key for t in j.touches), j.converted)]
            cell[0] += 1
            cell[1] += j.value
        agg = jr.aggregate(conn, period, jr.Dimension.CHANNEL, half_life_days=3.0)
        got = {(tuple(t.key for t in p.touches), p.converted): (p.weight, round(p.value, 6))
               for p in agg.paths}  # fmt: skip
        assert got == {k: (n, round(v, 6)) for k, (n, v) in expected.items()}
        decay = heuristic(reference, Model.TIME_DECAY, half_life_days=3.0)
        assert agg.decay_value == pytest.approx(decay, rel=1e-6)
    finally:
        conn.rollback()
