"""The rule language: parsing by `type`, registries of known names, and compiled SQL that
carries every value as a parameter, never in its text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from cloud.crm.segments.compiler import compile_rule, members_query
from cloud.crm.segments.rules import Rule, RuleError, check

RULE: TypeAdapter[Rule] = TypeAdapter(Rule)
NOW = datetime(2026, 12, 5, tzinfo=UTC)


def test_parses_the_tree_by_type() -> None:
    rule = RULE.validate_python(
        {"type": "and", "rules": [
            {"type": "event", "event": "buy", "min_count": 2, "within_days": 30,
             "where": [{"property": "category", "value": "shoes"}]},
            {"type": "not",
             "rule": {"type": "consent", "channel": "email", "purpose": "marketing"}},
        ]}
    )  # fmt: skip
    check(rule)
    assert rule.type == "and"


@pytest.mark.parametrize(
    ("raw", "path", "name"),
    [
        ({"type": "attribute", "attribute": "shoe_size", "op": "eq", "value": 1},
         "rule.attribute", "shoe_size"),
        ({"type": "or", "rules": [{"type": "lifecycle", "stages": ["purchase"]},
          {"type": "event", "event": "buy", "where": [{"property": "colour", "value": "red"}]}]},
         "rule.rules[1].where[0].property", "colour"),
        ({"type": "attribute", "attribute": "birth_year", "op": "gt", "value": "1980"},
         "rule.value", "birth_year"),
        ({"type": "attribute", "attribute": "country", "op": "in", "value": "DE"},
         "rule.value", "list"),
        ({"type": "attribute", "attribute": "vip", "op": "gt", "value": True},
         "rule.op", "boolean"),
    ],
)  # fmt: skip
def test_unknown_names_and_misfit_values_are_named(
    raw: dict[str, Any], path: str, name: str
) -> None:
    with pytest.raises(RuleError) as err:
        check(RULE.validate_python(raw))
    assert err.value.path == path and name in str(err.value)


def test_a_tracking_plan_makes_an_event_property_known() -> None:
    rule = RULE.validate_python(
        {"type": "event", "event": "buy", "where": [{"property": "colour", "value": "red"}]}
    )
    check(rule, {"buy": frozenset({"colour"})})
    with pytest.raises(RuleError):
        check(rule, {"view": frozenset({"colour"})})


def test_unknown_type_and_extra_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        RULE.validate_python({"type": "planets"})
    with pytest.raises(ValidationError):
        RULE.validate_python({"type": "lifecycle", "stages": ["purchase"], "sql": "1=1"})


def test_too_deep_is_refused() -> None:
    raw: dict[str, Any] = {"type": "lifecycle", "stages": ["purchase"]}
    for _ in range(9):
        raw = {"type": "not", "rule": raw}
    with pytest.raises(RuleError, match="deeper"):
        check(RULE.validate_python(raw))


def test_values_are_parameters_never_sql_text() -> None:
    evil = "x'); DROP TABLE crm_profiles; --"
    rule = RULE.validate_python(
        {"type": "or", "rules": [
            {"type": "attribute", "attribute": "city", "op": "eq", "value": evil},
            {"type": "event", "event": evil, "store_id": evil,
             "where": [{"property": "category", "value": evil}]},
            {"type": "loyalty_tier", "tiers": [evil]},
        ]}
    )  # fmt: skip
    q = members_query(compile_rule(rule, now=NOW), persons=[1, 2])
    text = q.sql.as_string(None)
    assert evil not in text and "DROP" not in text
    assert text.count("%s") == len(q.params)
    assert q.params.count(evil) == 4 and [evil] in q.params
