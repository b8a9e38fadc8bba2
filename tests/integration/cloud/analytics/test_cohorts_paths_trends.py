"""Retention cohorts, paths and trends agree with brute forces written from their definitions,
on generated data stored in real PostgreSQL (merged profiles, anonymous people, equal times)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.crm.analytics import paths, retention, trends
from cloud.crm.analytics.schemas import EventMatcher, PathQuery, RetentionQuery, TrendQuery
from tests.integration.cloud.analytics.world import (
    BASE,
    World,
    floor_div,
    matches,
    path_counts,
    text_of,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
KINDS = st.text("ppma", min_size=1, max_size=6)
#: (person, event, hours after BASE, property k, revenue)
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.sampled_from("abc"),
        st.integers(0, 24 * 50),
        st.sampled_from([None, "x", "y", "z"]),
        st.sampled_from([None, Decimal("2.50"), Decimal("10")]),
    ),
    max_size=30,
)


def _store(conn: psycopg.Connection[Any], kinds: str, events: list[Any]) -> World:
    world = World(conn)
    world.add_people(list(kinds))
    world.plan("abc", ["k"])
    for who, short, hour, k, rev in events:
        world.add(who % len(kinds), short, BASE + timedelta(hours=hour), {"k": k}, rev)
    return world


def _cohort_start(t: datetime, size: str) -> datetime:
    day = t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if size == "month":
        return day.replace(day=1)
    return day - timedelta(days=day.weekday())


def _retention(world: World, q: RetentionQuery) -> list[tuple[Any, ...]]:
    unit = timedelta(days=1 if q.unit == "day" else 7)
    sizes: dict[datetime, int] = defaultdict(int)
    ret: dict[tuple[datetime, int], int] = defaultdict(int)
    unb: dict[tuple[datetime, int], int] = defaultdict(int)
    rev: dict[tuple[datetime, int], Decimal] = defaultdict(Decimal)
    for evs in world.by_person().values():
        first = next((e for e in evs if matches(e, q.start_event) and e.t < q.end), None)
        if first is None or first.t < q.start:
            continue
        c = _cohort_start(first.t, q.cohort)
        sizes[c] += 1
        after = evs[evs.index(first) + 1 :]
        ns = {floor_div(e.t - first.t, unit) for e in after if matches(e, q.return_event)}
        for n in range(q.periods):
            ret[(c, n)] += n in ns
            unb[(c, n)] += any(m >= n for m in ns)
        for e in evs:
            if e.revenue is not None and e.t >= first.t:
                rev[(c, floor_div(e.t - first.t, unit))] += e.revenue
    return [
        (c, sizes[c], n, ret[(c, n)], unb[(c, n)], rev[(c, n)])
        for c in sorted(sizes)
        for n in range(q.periods)
    ]


@given(
    kinds=KINDS,
    events=EVENTS,
    start_event=st.sampled_from([None, "a", "b"]),
    return_event=st.sampled_from([None, "a", "c"]),
    cohort=st.sampled_from(["week", "month"]),
    unit=st.sampled_from(["day", "week"]),
    start_day=st.integers(0, 10),
    days=st.integers(1, 40),
)
@SETTINGS
def test_retention_matches_the_brute_force(
    database_url: str, kinds: str, events: list[Any], start_event: str | None,
    return_event: str | None, cohort: str, unit: str, start_day: int, days: int,
) -> None:  # fmt: skip
    with psycopg.connect(database_url) as conn:
        world = _store(conn, kinds, events)
        # "any event" would see other tests' people: a matcher on this world's names instead
        q = RetentionQuery(
            start=BASE + timedelta(days=start_day),
            end=BASE + timedelta(days=start_day + days),
            start_event=EventMatcher(event=world.name(start_event or "a")),
            return_event=EventMatcher(event=world.name(return_event)) if return_event else None,
            cohort=cohort,
            unit=unit,
            periods=6,
            revenue="events",
        )
        if return_event is None:  # any event, but only this world's (see above)
            q = q.model_copy(update={"return_event": None})
        got = [
            (c.start, c.size, p.n, p.retained, p.retained_unbounded, Decimal(p.revenue))
            for c in retention.retention(conn, q).cohorts
            for p in c.periods
        ]
        assert got == _retention(world, q)
        conn.rollback()


@given(
    kinds=KINDS,
    events=EVENTS,
    target=st.sampled_from(["a", "b"]),
    k=st.sampled_from([None, "x"]),
    direction=st.sampled_from(["after", "before"]),
    depth=st.integers(1, 4),
    limit=st.integers(1, 5),
)
@SETTINGS
def test_paths_match_the_brute_force(
    database_url: str, kinds: str, events: list[Any], target: str, k: str | None,
    direction: str, depth: int, limit: int,
) -> None:  # fmt: skip
    with psycopg.connect(database_url) as conn:
        world = _store(conn, kinds, events)
        filters = [{"property": "k", "op": "eq", "value": k}] if k else []
        q = PathQuery.model_validate(
            {"start": BASE + timedelta(days=2), "end": BASE + timedelta(days=40),
             "event": {"event": world.name(target), "filters": filters},
             "direction": direction, "depth": depth, "limit": limit}
        )  # fmt: skip
        seqs = []
        for evs in world.by_person().values():
            evs = [e for e in evs if q.start <= e.t < q.end]
            hit = next((i for i, e in enumerate(evs) if matches(e, q.event)), None)
            if hit is None:
                continue
            near = (
                evs[hit + 1 : hit + 1 + depth]
                if direction == "after"
                else evs[max(0, hit - depth) : hit]
            )
            seqs.append(tuple(e.event for e in near))
        got = paths.paths(conn, q)
        assert got.people == len(seqs)
        assert [(p.events, p.people) for p in got.paths] == path_counts(seqs, limit)
        conn.rollback()


@given(
    kinds=KINDS,
    events=EVENTS,
    interval=st.sampled_from(["day", "week", "month"]),
    measure=st.sampled_from(["events", "people"]),
    breakdown=st.sampled_from([None, "k"]),
    limit=st.integers(1, 3),
)
@SETTINGS
def test_trends_match_the_brute_force(
    database_url: str, kinds: str, events: list[Any], interval: str, measure: str,
    breakdown: str | None, limit: int,
) -> None:  # fmt: skip
    with psycopg.connect(database_url) as conn:
        world = _store(conn, kinds, events)
        q = TrendQuery.model_validate(
            {"start": BASE + timedelta(days=1), "end": BASE + timedelta(days=45),
             "event": {"event": world.name("a")}, "interval": interval, "measure": measure,
             "breakdown": breakdown, "breakdown_limit": limit}
        )  # fmt: skip
        rows = [
            (text_of(e.props.get("k")) if breakdown else None, _bucket(e.t, interval), e)
            for e in world.events
            if q.start <= e.t < q.end and matches(e, q.event)
        ]

        def size(items: list[Any]) -> int:
            return len(items) if measure == "events" else len({e.person for e in items})

        values = {v for v, _, _ in rows}
        ranked = sorted(
            values, key=lambda v: (-size([e for w, _, e in rows if w == v]), v is None, v or "")
        )
        top = ranked[:limit]
        want = []
        for label, other in [(v, False) for v in top] + ([(None, True)] if ranked[limit:] else []):
            mine = [
                (b, e)
                for v, b, e in rows
                if (v in top and v == label and not other) or (other and v not in top)
            ]
            points = sorted({b for b, _ in mine})
            want.append((label, other, size([e for _, e in mine]),
                         [(b, size([e for c, e in mine if c == b])) for b in points]))  # fmt: skip
        got = trends.trends(conn, q)
        assert [
            (s.breakdown_value, s.other, s.total, [(p.start, p.value) for p in s.points])
            for s in got.series
        ] == want
        conn.rollback()


def _bucket(t: datetime, interval: str) -> datetime:
    day = t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "month":
        return day.replace(day=1)
    return day - timedelta(days=day.weekday()) if interval == "week" else day
