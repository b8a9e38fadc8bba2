"""The SQL full rescoring against a brute-force Python computation (scores.behaviour_reference,
written from the rules' documented meaning), over random rules, events and merges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.crm.scoring import service
from cloud.crm.scoring.rules import BehaviourRule, Filter, FitConfig, FitRule, ProgrammeConfig
from cloud.crm.scoring.scores import behaviour_reference, behaviour_score, fit_score
from tests.integration.cloud.scoring import world

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
_values: Any = st.one_of(st.integers(0, 50), st.sampled_from(["a", "b"]), st.booleans())


@st.composite
def filters(draw: st.DrawFn) -> Filter:
    op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists"]))
    prop = draw(st.sampled_from(["price", "cat", "flag"]))
    if op == "exists":
        return Filter(property=prop, op=op)
    if op in ("gt", "gte", "lt", "lte"):
        return Filter(property=prop, op=op, value=draw(st.integers(0, 50)))
    if op == "in":
        return Filter(property=prop, op=op, value=draw(st.lists(_values, min_size=1, max_size=3)))
    return Filter(property=prop, op=op, value=draw(_values))


@st.composite
def configs(draw: st.DrawFn) -> ProgrammeConfig:
    rules = []
    for i in range(draw(st.integers(0, 4))):
        rules.append(
            BehaviourRule(
                key=f"r{i}",
                event=draw(st.sampled_from(["view", "click"])),
                filters=draw(st.lists(filters(), max_size=2)),
                points=draw(st.sampled_from([-5.0, 1.0, 2.5, 10.0])),
                repeat=draw(st.sampled_from(["once", "repeatable"])),
                daily_cap=draw(st.sampled_from([None, 1.0, 4.0, 20.0])),
            )
        )
    fit_rules = [FitRule(key=f"f{i}", filter=draw(filters()), points=10) for i in range(2)]
    return ProgrammeConfig(
        behaviour_rules=rules,
        half_life_days=draw(st.sampled_from([0.5, 3.0, 30.0])),
        fit=FitConfig(completeness_fields=["email", "city"], rules=fit_rules),
    )


_event = st.tuples(
    st.integers(0, 2),  # which profile
    st.sampled_from(["view", "click", "other"]),
    st.integers(0, 5 * 24 * 60),  # minutes back
    st.dictionaries(st.sampled_from(["price", "cat", "flag"]), _values, max_size=3),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    config=configs(),
    events=st.lists(_event, max_size=25),
    merged=st.booleans(),
    attrs=st.lists(
        st.dictionaries(st.sampled_from(["email", "city", "price", "cat"]), _values, max_size=3),
        min_size=3,
        max_size=3,
    ),
)
def test_sql_rescoring_equals_brute_force(
    sc_conn: psycopg.Connection[Any],
    config: ProgrammeConfig,
    events: list[tuple[int, str, int, dict[str, Any]]],
    merged: bool,
    attrs: list[dict[str, Any]],
) -> None:
    conn = sc_conn
    try:
        pids = [world.profile(conn, a) for a in attrs]
        if merged:  # profile 2 was merged into profile 1: its events count for 1
            conn.execute(
                "UPDATE crm_profiles SET merged_into = %s WHERE id = %s", (pids[1], pids[2])
            )
        prog = service.create(conn, name="hyp", config=config, actor="t")
        mine: dict[int, list[tuple[int, float, str | None, dict[str, Any]]]] = {}
        for who, name, back, props in events:
            at = NOW - timedelta(minutes=back)
            eid = world.event(conn, pids[who], name, at, props)
            owner = pids[1] if merged and who == 2 else pids[who]
            mine.setdefault(owner, []).append((eid, at.timestamp(), name, props))
        service.rescore(conn, prog.id, now=NOW)
        rows = conn.execute(
            "SELECT profile_id, features -> 'by_rule', behaviour, fit FROM crm_scores"
            " WHERE programme_id = %s",
            (prog.id,),
        ).fetchall()
        got = {int(r[0]): (r[1], r[2], r[3]) for r in rows}
        assert set(got) == set(mine)
        for pid, evs in mine.items():
            want = behaviour_reference(config, evs, NOW.timestamp())
            by_rule, behaviour, fit = got[pid]
            assert set(by_rule) == set(want)
            for k, v in want.items():
                assert abs(by_rule[k] - v) <= 1e-9 * max(1.0, abs(v)), (k, by_rule[k], v)
            assert abs(behaviour - behaviour_score(sum(want.values()), config)) < 1e-9
            assert abs(fit - fit_score(config, attrs[pids.index(pid)])) < 1e-9
    finally:
        conn.rollback()
