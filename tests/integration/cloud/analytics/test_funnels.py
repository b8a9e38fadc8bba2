"""Funnels compiled to SQL agree with a brute force that tries every entry event, on
generated data stored in real PostgreSQL (merged profiles, anonymous people, equal times)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.crm.analytics import funnels
from cloud.crm.analytics.repository import Params
from cloud.crm.analytics.schemas import DropoffQuery, EventMatcher, FunnelQuery, PropertyFilter
from tests.integration.cloud.analytics import brute
from tests.integration.cloud.analytics.world import BASE, World, percentile

FILTERS = {
    None: [],
    "k=x": [PropertyFilter(property="k", op="eq", value="x")],
    "n>=5": [PropertyFilter(property="n", op="gte", value=5)],
    "k in x,y": [PropertyFilter(property="k", op="in", value=["x", "y"])],
    "k!=y": [PropertyFilter(property="k", op="neq", value="y")],
}
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.sampled_from("abc"),
        st.integers(0, 24).map(lambda m: 10 * m),  # coarse: equal times, window edges
        st.sampled_from([None, "x", "y"]),
        st.sampled_from([None, 1, 5]),
    ),
    max_size=30,
)
STEPS = st.lists(
    st.tuples(st.sampled_from("abc"), st.sampled_from(list(FILTERS))), min_size=2, max_size=4
)


def _store(conn: psycopg.Connection[Any], kinds: str, events: list[Any]) -> World:
    world = World(conn)
    world.add_people(list(kinds))
    world.plan("abc", ["k", "n"])
    for who, short, minute, k, n in events:
        world.add(who % len(kinds), short, BASE + timedelta(minutes=minute), {"k": k, "n": n})
    return world


def _query(world: World, steps: list[Any], start: int, length: int, window: int, **kw: Any) -> Any:
    return FunnelQuery(
        start=BASE + timedelta(minutes=start),
        end=BASE + timedelta(minutes=start + length),
        steps=[EventMatcher(event=world.name(s), filters=FILTERS[f]) for s, f in steps],
        window_seconds=window * 60,
        **kw,
    )


def _per_person(conn: psycopg.Connection[Any], q: FunnelQuery) -> dict[Any, brute.Outcome]:
    p = Params()
    sql = funnels.per_person_sql(q, p) + psycopg.sql.SQL(
        "SELECT pid, anon, depth, ttc, bval FROM pp"
    )
    return {
        (("p", pid) if pid is not None else ("a", anon)): brute.Outcome(depth, ttc, bval)
        for pid, anon, depth, ttc, bval in conn.execute(sql, p.values)
    }


@given(
    kinds=st.text("ppma", min_size=1, max_size=6),
    events=EVENTS,
    steps=STEPS,
    start=st.integers(0, 6).map(lambda m: 10 * m),
    length=st.integers(1, 18).map(lambda m: 10 * m),
    window=st.integers(1, 12).map(lambda m: 10 * m),
    order=st.sampled_from(["strict", "any"]),
    breakdown=st.sampled_from([None, "k"]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_person_matches_the_brute_force(
    database_url: str, kinds: str, events: list[Any], steps: list[Any], start: int,
    length: int, window: int, order: str, breakdown: str | None,
) -> None:  # fmt: skip
    with psycopg.connect(database_url) as conn:
        world = _store(conn, kinds, events)
        q = _query(world, steps, start, length, window, order=order, breakdown=breakdown)
        assert _per_person(conn, q) == brute.funnel(world, q)
        conn.rollback()


@given(kinds=st.text("ppma", min_size=1, max_size=6), events=EVENTS, steps=STEPS,
       order=st.sampled_from(["strict", "any"]))  # fmt: skip
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_summary_and_dropoffs_match_the_brute_force(
    database_url: str, kinds: str, events: list[Any], steps: list[Any], order: str
) -> None:
    with psycopg.connect(database_url) as conn:
        world = _store(conn, kinds, events)
        q = _query(world, steps, 0, 120, 60, order=order, breakdown="k")
        want = brute.funnel(world, q)
        got = funnels.funnel(conn, q)
        reached = [sum(o.depth >= k for o in want.values()) for k in range(1, len(steps) + 1)]
        assert [s.count for s in got.total.steps] == reached
        times = [o.ttc for o in want.values() if o.ttc is not None]
        assert got.total.time_to_convert.median == pytest.approx(percentile(times, 0.5))
        assert sum(b.count for b in got.total.time_to_convert.histogram) == reached[-1]
        by_value: dict[Any, int] = {}
        for o in want.values():
            by_value[o.bval] = by_value.get(o.bval, 0) + 1
        assert {g.breakdown_value: g.steps[0].count for g in got.breakdown} == by_value
        dropped = funnels.dropoffs(conn, DropoffQuery(**q.model_dump(), step=1, limit=1000))
        expect = {p for p, o in want.items() if o.depth == 1}
        listed = {
            ("p", x.profile_id) if x.profile_id else ("a", x.anonymous_id) for x in dropped.people
        }
        assert listed == expect and not dropped.truncated
        conn.rollback()
