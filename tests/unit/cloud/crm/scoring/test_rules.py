"""The rule engine, decay, fit and levels as (input, expected) tables; config validation."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import pytest
from pydantic import ValidationError

from cloud.crm.scoring.model import PlattCalibrator
from cloud.crm.scoring.rules import (
    BehaviourRule,
    Filter,
    ProgrammeConfig,
    award,
    decay,
    filter_matches,
    rule_matches,
)
from cloud.crm.scoring.scores import (
    ProfileState,
    behaviour_reference,
    combined_score,
    crossings,
    fit_score,
    next_level,
)

DAY = 86400.0


@pytest.mark.parametrize(
    ("op", "value", "props", "expected"),
    [
        ("eq", "a", {"p": "a"}, True),
        ("eq", "a", {"p": "b"}, False),
        ("eq", "a", {}, False),
        ("eq", 1, {"p": 1.0}, True),
        ("eq", 1, {"p": True}, False),
        ("eq", True, {"p": True}, True),
        ("eq", "1", {"p": 1}, False),
        ("ne", "a", {}, True),
        ("ne", "a", {"p": "a"}, False),
        ("ne", 1, {"p": True}, True),
        ("gt", 10, {"p": 11}, True),
        ("gt", 10, {"p": 10}, False),
        ("gte", 10, {"p": 10}, True),
        ("lt", 10, {"p": "5"}, False),
        ("lt", 10, {"p": True}, False),
        ("lte", 10, {"p": 10.0}, True),
        ("in", ["a", 2], {"p": 2}, True),
        ("in", ["a", 2], {"p": "b"}, False),
        ("exists", None, {"p": None}, True),
        ("exists", None, {"q": 1}, False),
    ],
)
def test_filter_table(op: str, value: Any, props: dict[str, Any], expected: bool) -> None:
    assert filter_matches(Filter(property="p", op=op, value=value), props) is expected


@pytest.mark.parametrize(
    ("repeat", "points", "cap", "used", "expected"),
    [
        ("repeatable", 5.0, None, 1000.0, 5.0),
        ("repeatable", 5.0, 12.0, 0.0, 5.0),
        ("repeatable", 5.0, 12.0, 10.0, 2.0),  # a partial award up to the cap
        ("repeatable", 5.0, 12.0, 12.0, 0.0),
        ("repeatable", -5.0, 12.0, 10.0, -2.0),  # the cap bounds negative points too
        ("once", 5.0, None, 0.0, 5.0),
        ("once", 5.0, None, 5.0, 0.0),
        ("once", -3.0, 1.0, 0.0, -3.0),  # a once-only rule ignores the cap
    ],
)
def test_award_table(
    repeat: str, points: float, cap: float | None, used: float, expected: float
) -> None:
    rule = BehaviourRule(key="r", event="e", points=points, repeat=repeat, daily_cap=cap)
    assert award(rule, used) == expected


@pytest.mark.parametrize(
    ("points", "age_days", "half_life", "expected"),
    [
        (10.0, 0.0, 7.0, 10.0),
        (10.0, 7.0, 7.0, 5.0),
        (10.0, 14.0, 7.0, 2.5),
        (10.0, -3.0, 7.0, 10.0),  # a future event counts as now
        (-8.0, 30.0, 30.0, -4.0),
    ],
)
def test_decay_table(points: float, age_days: float, half_life: float, expected: float) -> None:
    assert math.isclose(decay(points, age_days * DAY, half_life * DAY), expected)


def _cfg(**kw: Any) -> ProgrammeConfig:
    return ProgrammeConfig.model_validate(kw)


@pytest.mark.parametrize(
    ("rule", "events", "expected"),
    [
        # three views in one day, cap 10 at 4 points: 4 + 4 + 2
        (
            {"key": "v", "event": "view", "points": 4, "daily_cap": 10},
            [(1, 0.0, "view"), (2, 1.0, "view"), (3, 2.0, "view")],
            10.0,
        ),
        # the cap is per UTC day: a view the next day earns again
        (
            {"key": "v", "event": "view", "points": 4, "daily_cap": 4},
            [(1, 0.0, "view"), (2, 10.0, "view"), (3, DAY + 1, "view")],
            8.0,
        ),
        # once: only the first ever
        (
            {"key": "s", "event": "signup", "points": 20, "repeat": "once"},
            [(1, 0.0, "signup"), (2, 3 * DAY, "signup")],
            20.0,
        ),
        # other events earn nothing
        ({"key": "v", "event": "view", "points": 4}, [(1, 0.0, "click")], 0.0),
    ],
)
def test_behaviour_reference_table(
    rule: dict[str, Any], events: list[tuple[int, float, str]], expected: float
) -> None:
    cfg = _cfg(behaviour_rules=[rule], half_life_days=3650)
    as_of = max(t for _, t, _ in events)
    got = behaviour_reference(cfg, [(i, t, n, {}) for i, t, n in events], as_of)
    assert math.isclose(sum(got.values()), expected, rel_tol=1e-3)


def test_decay_halves_behaviour_over_a_half_life() -> None:
    cfg = _cfg(behaviour_rules=[{"key": "v", "event": "view", "points": 10}], half_life_days=5)
    got = behaviour_reference(cfg, [(1, 0.0, "view", {})], 5 * DAY)
    assert math.isclose(got["v"], 5.0)


def test_profile_state_matches_reference_out_of_order() -> None:
    st = ProfileState(1)
    h = 2 * DAY
    st.add(3 * DAY, h, [("a", 8.0)])
    st.add(1 * DAY, h, [("a", 8.0)])  # late: added already decayed
    st.move_to(5 * DAY, h)
    assert math.isclose(st.by_rule["a"], 8 * 2**-1 + 8 * 2**-2)


@pytest.mark.parametrize(
    ("current", "score", "expected"),
    [
        ("none", 49.9, "none"),
        ("none", 50.0, "mql"),
        ("none", 80.0, "sql"),
        ("mql", 46.0, "mql"),  # inside the hysteresis band: stays
        ("mql", 44.9, "none"),
        ("sql", 71.0, "sql"),
        ("sql", 69.0, "mql"),
        ("sql", 10.0, "none"),
    ],
)
def test_hysteresis_table(current: str, score: float, expected: str) -> None:
    th = _cfg(thresholds={"mql": 50, "sql": 75, "hysteresis": 5}).thresholds
    assert next_level(current, score, th) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("none", "sql", [("mql", "up", 50.0), ("sql", "up", 75.0)]),
        ("sql", "none", [("sql", "down", 70.0), ("mql", "down", 45.0)]),
        ("mql", "mql", []),
    ],
)
def test_crossings_table(old: str, new: str, expected: list[tuple[str, str, float]]) -> None:
    th = _cfg(thresholds={"mql": 50, "sql": 75, "hysteresis": 5}).thresholds
    assert crossings(old, new, th) == expected


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({}, 0.0),
        ({"email": "a@b", "city": "X"}, 20.0),
        ({"email": "a@b", "city": "", "country": "DE"}, 40.0),
        ({"country": "DE", "employees": 500}, 60.0),
        ({"country": "FR", "employees": 5}, 0.0),
    ],
)
def test_fit_table(attrs: dict[str, Any], expected: float) -> None:
    cfg = _cfg(
        fit={
            "completeness_fields": ["email", "city"],
            "completeness_points": 20,
            "rules": [
                {
                    "key": "de",
                    "filter": {"property": "country", "op": "eq", "value": "DE"},
                    "points": 30,
                },
                {
                    "key": "big",
                    "filter": {"property": "employees", "op": "gte", "value": 100},
                    "points": 30,
                },
                {
                    "key": "small",
                    "filter": {"property": "employees", "op": "lt", "value": 10},
                    "points": -50,
                },
            ],
        }
    )
    assert fit_score(cfg, attrs) == expected


def test_combined_drops_a_missing_prediction_from_the_weights() -> None:
    cfg = _cfg(weights={"behaviour": 1, "fit": 1, "predictive": 2})
    assert combined_score(cfg, 60, 20, None) == 40.0
    assert combined_score(cfg, 60, 20, 100) == 70.0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"behaviour_rules": [{"key": "Bad Key", "event": "e", "points": 1}]}, "key"),
        ({"behaviour_rules": [{"key": "a", "event": "e", "points": 0}]}, "points"),
        (
            {
                "behaviour_rules": [
                    {
                        "key": "a",
                        "event": "e",
                        "points": 1,
                        "filters": [{"property": "p", "op": "gt", "value": "x"}],
                    }
                ]
            },
            "value",
        ),
        (
            {
                "behaviour_rules": [
                    {"key": "a", "event": "e", "points": 1},
                    {"key": "a", "event": "f", "points": 1},
                ]
            },
            "duplicate",
        ),
        ({"thresholds": {"mql": 80, "sql": 70}}, "sql"),
        ({"half_life_days": 0}, "half_life_days"),
        ({"weights": {"behaviour": 0, "fit": 0, "predictive": 0}}, "weights"),
        ({"nope": 1}, "nope"),
    ],
)
def test_config_validation_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ProgrammeConfig.model_validate(body)
    assert field in str(exc.value)


def test_rule_matches_needs_every_filter() -> None:
    rule = BehaviourRule(
        key="r", event="view", points=1,
        filters=[Filter(property="a", op="eq", value=1), Filter(property="b", op="exists")],
    )  # fmt: skip
    assert rule_matches(rule, "view", {"a": 1, "b": None})
    assert not rule_matches(rule, "view", {"a": 1})
    assert not rule_matches(rule, "click", {"a": 1, "b": 0})


def test_platt_calibrator_corrects_an_overconfident_model() -> None:
    # The raw model says 0.9 where the truth is 0.6, and 0.1 where it is 0.4.
    cal = PlattCalibrator()
    for i in range(2000):
        cal.update(0.9, i % 10 < 6)
        cal.update(0.1, i % 10 < 4)
    assert abs(cal.calibrate(0.9) - 0.6) < 0.03
    assert abs(cal.calibrate(0.1) - 0.4) < 0.03
    assert cal.calibrate(0.9) > cal.calibrate(0.5) > cal.calibrate(0.1)


def test_platt_calibrator_stays_bounded_on_separable_labels() -> None:
    # Every raw p above 0.5 converted and none below: an unbounded fit runs the slope off to
    # infinity, every calibrated value becomes exactly 0 or 1 and the ranking is lost (AUC 0.5).
    cal = PlattCalibrator()
    for i in range(3000):
        p = 0.02 + 0.96 * (i % 97) / 96
        cal.update(p, p > 0.5)
    grid = [0.05 + 0.05 * k for k in range(19)]
    calibrated = [cal.calibrate(p) for p in grid]
    assert all(a < b for a, b in pairwise(calibrated))  # strictly increasing: no ties
    assert calibrated[0] > 0.0 and calibrated[-1] < 1.0
    assert calibrated[0] < 0.2 and calibrated[-1] > 0.8  # and it did learn the direction
