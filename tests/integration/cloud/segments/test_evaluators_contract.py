"""Contract suite: every segment evaluator agrees with a brute-force Python evaluation of the
same rule over the same generated world (hypothesis). The evaluators are the full SQL
evaluation, the per-person SQL evaluation (one person at a time), incremental membership
(the consumer, fed in two halves) and the sweep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings

from cloud.crm.segments import handlers, service
from cloud.crm.segments import repository as repo
from tests.integration.cloud.segments.brute import brute_force
from tests.integration.cloud.segments.loading import load_activity, load_profiles
from tests.integration.cloud.segments.rule_gen import rules_strategy
from tests.integration.cloud.segments.world import NOW, World, fixed_cases, worlds

Conn = psycopg.Connection[Any]
BASE = 1_000_000


def full_sql(conn: Conn, world: World, rule: Any) -> set[int]:
    load_profiles(conn, world)
    load_activity(conn, world)
    return service.matching(conn, rule, now=NOW)


def per_person_sql(conn: Conn, world: World, rule: Any) -> set[int]:
    load_profiles(conn, world)
    load_activity(conn, world)
    out: set[int] = set()
    for p in world.profiles:
        out |= service.matching(conn, rule, now=NOW, persons=[p.id])
    return out


def incremental(conn: Conn, world: World, rule: Any) -> set[int]:
    handlers.process_all(conn, now=NOW)  # start from the current end of the sources
    seg = service.create(conn, name="contract", description="", kind="dynamic", rule=rule,
                         actor="t", now=NOW)  # fmt: skip
    load_profiles(conn, world)
    load_activity(conn, world, half=1)
    handlers.process_all(conn, now=NOW)
    load_activity(conn, world, half=2)
    handlers.process_all(conn, now=NOW)
    return repo.current_members(conn, seg.id)


def sweep(conn: Conn, world: World, rule: Any) -> set[int]:
    seg = service.create(conn, name="contract", description="", kind="dynamic", rule=rule,
                         actor="t", now=NOW)  # fmt: skip
    load_profiles(conn, world)
    load_activity(conn, world)
    service.sweep(conn, now=NOW)
    return repo.current_members(conn, seg.id)


def _examples(f: Callable[..., None]) -> Callable[..., None]:
    """Boundary cases every evaluator must get right, run before the generated ones."""
    for world, rule in fixed_cases(BASE):
        f = example(world=world, rule=rule)(f)
    return f


EVALUATORS: dict[str, Callable[[Conn, World, Any], set[int]]] = {
    "full_sql": full_sql,
    "per_person_sql": per_person_sql,
    "incremental": incremental,
    "sweep": sweep,
}


@pytest.mark.parametrize("name", list(EVALUATORS))
def test_evaluator_agrees_with_brute_force(name: str, seg_conn: Conn) -> None:
    evaluate = EVALUATORS[name]

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(world=worlds(BASE), rule=rules_strategy())
    @_examples
    def check(world: World, rule: Any) -> None:
        expected = brute_force(world, rule)
        with seg_conn.transaction(force_rollback=True):
            got = evaluate(seg_conn, world, rule)
        assert got == expected, rule.model_dump(mode="json")

    check()
