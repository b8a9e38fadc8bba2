"""Graph rules of a definition: (definition, expected (node, code) problems) tables."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cloud.crm.automation.definition import Definition
from cloud.crm.automation.engine import next_local
from cloud.crm.automation.validation import check_graph

TASK = {"kind": "staff_task", "title": "call"}


def _d(*nodes: dict[str, Any]) -> Definition:
    return Definition.model_validate({"trigger": {"kind": "api"}, "nodes": list(nodes)})


ENTRY = {"id": "s", "type": "entry", "next": "a"}


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        # valid: a straight line
        ([ENTRY, {"id": "a", "type": "action", "action": TASK}], []),
        # valid: a loop through a wait
        (
            [
                ENTRY,
                {"id": "a", "type": "action", "action": TASK, "next": "w"},
                {"id": "w", "type": "wait", "seconds": 60, "next": "a"},
            ],
            [],
        ),
        # a cycle with no wait on it
        (
            [
                ENTRY,
                {"id": "a", "type": "action", "action": TASK, "next": "b"},
                {"id": "b", "type": "condition", "yes": "a", "no": None,
                 "condition": {"kind": "attribute", "attribute": "x", "op": "exists"}},
            ],
            [("a", "cycle-without-wait")],
        ),
        # a node nothing leads to
        (
            [ENTRY, {"id": "a", "type": "action", "action": TASK},
             {"id": "lost", "type": "end"}],
            [("lost", "unreachable")],
        ),
        # wait for an event with no timeout
        (
            [ENTRY, {"id": "a", "type": "wait_event", "event": "open", "yes": None}],
            [("a", "wait-without-timeout")],
        ),
        # a wait with neither a duration nor a time of day
        ([ENTRY, {"id": "a", "type": "wait"}], [("a", "wait-shape")]),
        # an edge to a node that does not exist
        (
            [ENTRY, {"id": "a", "type": "action", "action": TASK, "next": "ghost"}],
            [("a", "unknown-node")],
        ),
        # two entries, a duplicate id
        ([ENTRY, {"id": "s", "type": "entry"}, {"id": "a", "type": "end"}],
         [("s", "duplicate-id"), ("s", "entry")]),
        ([{"id": "a", "type": "end"}], [(None, "entry")]),
        # duplicate split branch names
        (
            [ENTRY, {"id": "a", "type": "split", "branches": [
                {"name": "x", "weight": 1}, {"name": "x", "weight": 2}]}],
            [("a", "duplicate-branch")],
        ),
    ],
)  # fmt: skip
def test_graph_rules(nodes: list[dict[str, Any]], expected: list[tuple[str | None, str]]) -> None:
    assert [(p.node, p.code) for p in check_graph(_d(*nodes))] == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "a", "type": "split", "branches": [{"name": "x", "weight": 1}]},  # one branch
        {"id": "a", "type": "split", "branches": [{"name": "x", "weight": 0},
                                                  {"name": "y", "weight": 1}]},  # zero weight
        {"id": "bad id!", "type": "end"},
        {"id": "a", "type": "action", "action": {"kind": "webhook", "url": "ftp://x/y"}},
        {"id": "a", "type": "wait", "until_local": "25:00"},
        {"id": "a", "type": "teleport"},
    ],
)  # fmt: skip
def test_node_shapes_refused_by_the_schema(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _d(ENTRY, bad)


@pytest.mark.parametrize(
    ("now", "hhmm", "tz", "expected"),
    [
        ("2026-03-02T08:00:00+00:00", "09:00", "UTC", "2026-03-02T09:00:00+00:00"),
        ("2026-03-02T09:00:00+00:00", "09:00", "UTC", "2026-03-03T09:00:00+00:00"),
        ("2026-03-02T08:00:00+00:00", "09:00", "Europe/Paris", "2026-03-03T08:00:00+00:00"),
        ("2026-03-28T09:00:00+00:00", "09:00", "Europe/Paris", "2026-03-29T07:00:00+00:00"),
    ],
)
def test_next_local_time(now: str, hhmm: str, tz: str, expected: str) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    got = next_local(datetime.fromisoformat(now), hhmm, ZoneInfo(tz))
    assert got == datetime.fromisoformat(expected)


@pytest.mark.parametrize("value", [True, False, 0, 1, 1.5, "x", None])
def test_scalar_values_survive_the_stored_json(value: object) -> None:
    """A stored definition keeps True as true (a union once serialised it as 1)."""
    from cloud.crm.automation.definition import as_json

    action = {"kind": "set_attribute", "attribute": "k", "value": value}
    d = _d(ENTRY, {"id": "a", "type": "action", "action": action})
    stored = as_json(d)["nodes"]
    assert isinstance(stored, list) and isinstance(stored[1], dict)
    kept = stored[1]["action"]
    assert isinstance(kept, dict)
    got = kept["value"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "trigger",
    [
        {"kind": "schedule", "cron": "61 * * * *"},
        {"kind": "schedule", "cron": "0 8 * * *", "timezone": "Mars/Olympus"},
        {"kind": "score", "programme": "p", "threshold": float("nan")},
        {"kind": "churn", "above": 1.5},
    ],
)
def test_triggers_refused_by_the_schema(trigger: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Definition.model_validate({"trigger": trigger, "nodes": [{"id": "s", "type": "entry"}]})


def test_a_nan_value_is_refused() -> None:
    action = {"kind": "set_attribute", "attribute": "k", "value": float("nan")}
    with pytest.raises(ValidationError):
        _d(ENTRY, {"id": "a", "type": "action", "action": action})
