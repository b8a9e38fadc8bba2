"""Attribution models against hand-computed cases, a published worked example, and the
properties every model must keep (credits sum to the conversions; Shapley by its definition)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.crm.attribution.journeys import person_journeys
from cloud.crm.attribution.models import (
    HEURISTIC,
    Journey,
    Model,
    Touch,
    attribute,
    heuristic,
    markov,
    per_touch,
    shapley,
    shapley_by_enumeration,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _journey(
    keys: list[str], converted: bool = True, value: float = 1.0, days: float = 1.0
) -> Journey:
    touches = tuple(Touch(k, T0 + timedelta(days=i * days)) for i, k in enumerate(keys))
    end = T0 + timedelta(days=len(keys) * days)
    return Journey(touches, converted, value if converted else 0.0, end if converted else None)


def test_markov_reproduces_the_published_worked_example() -> None:
    # Serhii Puzyrov, "Markov Chain Attribution - Simple Explanation Of Removal Effect" (2019,
    # serhiipuzyrov.com/2019/07/markov-chain-attribution-simple-explanation-of-removal-effect):
    # paths google ads (2 conversions), mailing (1), google ads > mailing (1), google ads (0).
    # The chain converts with P = 0.8; removing google ads leaves 0.2 (removal effect 0.75),
    # removing mailing leaves 0.4 (0.5); 4 conversions share out 2.4 and 1.6.
    journeys = [
        _journey(["google ads"]), _journey(["google ads"]), _journey(["mailing"]),
        _journey(["google ads", "mailing"]), _journey(["google ads"], converted=False),
    ]  # fmt: skip
    result = markov(journeys)
    assert result.conversion_probability == pytest.approx(0.8)
    assert result.removal_effects == pytest.approx({"google ads": 0.75, "mailing": 0.5})
    assert result.credits == pytest.approx({"google ads": 2.4, "mailing": 1.6})
    assert result.transitions[("(start)", "google ads")] == pytest.approx(0.8)
    assert result.transitions[("google ads", "mailing")] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("model", "keys", "expected"),
    [
        (Model.FIRST_TOUCH, ["a", "b", "c"], [1.0, 0.0, 0.0]),
        (Model.LAST_TOUCH, ["a", "b", "c"], [0.0, 0.0, 1.0]),
        (Model.LINEAR, ["a", "b", "c", "d"], [0.25, 0.25, 0.25, 0.25]),
        (Model.POSITION_BASED, ["a"], [1.0]),
        (Model.POSITION_BASED, ["a", "b"], [0.5, 0.5]),
        (Model.POSITION_BASED, ["a", "b", "c"], [0.4, 0.2, 0.4]),
        (Model.POSITION_BASED, ["a", "b", "c", "d", "e"], [0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4]),
        # touches 3, 2 and 1 days before the conversion, half-life 1 day: weights 1/8, 1/4, 1/2
        (Model.TIME_DECAY, ["a", "b", "c"], [1 / 7, 2 / 7, 4 / 7]),
    ],
)
def test_heuristic_shares(model: Model, keys: list[str], expected: list[float]) -> None:
    assert per_touch(_journey(keys), model, half_life_days=1.0) == pytest.approx(expected)


def test_heuristics_weight_by_value_and_ignore_journeys_without_conversion() -> None:
    journeys = [_journey(["a", "b"], value=100.0), _journey(["b"], value=50.0),
                _journey(["a", "c"], converted=False)]  # fmt: skip
    assert heuristic(journeys, Model.LINEAR) == pytest.approx({"a": 50.0, "b": 100.0})
    assert heuristic(journeys, Model.FIRST_TOUCH) == pytest.approx({"a": 100.0, "b": 50.0})


def test_shapley_by_hand() -> None:
    # v({a}) = 2, v({b}) = 1, v({a, b}) = 2 + 1 + 3: a gets 2 + 3/2, b gets 1 + 3/2
    journeys = [_journey(["a"]), _journey(["a"]), _journey(["b"]), *[_journey(["a", "b"])] * 3]
    assert shapley(journeys) == pytest.approx({"a": 3.5, "b": 2.5})
    assert shapley_by_enumeration(journeys) == pytest.approx({"a": 3.5, "b": 2.5})


def test_higher_order_markov_distinguishes_the_order_of_touches() -> None:
    # a>b converts, b>a does not: first order cannot tell them apart, second order can
    journeys = [_journey(["a", "b"])] * 3 + [_journey(["b", "a"], converted=False)] * 3
    second = markov(journeys, order=2)
    assert sum(second.credits.values()) == pytest.approx(3.0)
    assert second.conversion_probability == pytest.approx(0.5)
    with pytest.raises(ValueError, match="order"):
        markov(journeys, order=0)


def test_shapley_refuses_too_many_keys() -> None:
    with pytest.raises(ValueError, match="at most 3"):
        shapley([_journey(["a", "b", "c", "d"])], max_keys=3)


_keys = st.lists(st.sampled_from("abcde"), min_size=0, max_size=5)
_journeys = st.lists(
    st.tuples(_keys, st.booleans(), st.floats(min_value=0.5, max_value=500.0)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(_journeys, st.sampled_from(list(Model)), st.integers(min_value=1, max_value=2))
def test_every_model_shares_out_exactly_the_attributed_conversions(
    raw: list[tuple[list[str], bool, float]], model: Model, order: int
) -> None:
    journeys = [_journey(k, c, v) for k, c, v in raw]
    credits = attribute(journeys, model, order=order)
    converting = [j for j in journeys if j.converted and j.touches]
    expected = sum(j.value for j in converting)
    if model is Model.MARKOV and expected and not credits:
        pytest.fail("Markov gave no credit to journeys that converted")
    assert sum(credits.values()) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert all(v >= -1e-9 for v in credits.values())
    assert set(credits) <= {t.key for j in converting for t in j.touches} | (
        {t.key for j in journeys for t in j.touches} if model is Model.MARKOV else set()
    )


@settings(max_examples=40, deadline=None)
@given(_journeys)
def test_shapley_closed_form_equals_the_definition(
    raw: list[tuple[list[str], bool, float]],
) -> None:
    journeys = [_journey(k, c, v) for k, c, v in raw]
    assert shapley(journeys) == pytest.approx(shapley_by_enumeration(journeys), abs=1e-6)


def test_person_journeys_split_by_conversion_and_lookback() -> None:
    day = timedelta(days=1)
    events = [
        (T0, 0, "email", None),
        (T0 + 40 * day, 0, "web", None),  # 40 days later: the email went quiet (no conversion)
        (T0 + 41 * day, 0, "sms", None),
        (T0 + 42 * day, 1, None, 120),  # web, sms -> conversion
        (T0 + 43 * day, 1, None, 30),  # direct: no touch left
        (T0 + 50 * day, 0, "app", None),  # never converted
    ]
    got = list(person_journeys(iter(events), lookback=30 * day))  # type: ignore[arg-type]
    assert [([t.key for t in j.touches], j.converted, j.value) for j in got] == [
        (["email"], False, 0.0),
        (["web", "sms"], True, 120.0),
        ([], True, 30.0),
        (["app"], False, 0.0),
    ]


def test_heuristic_models_are_all_listed() -> None:
    assert set(HEURISTIC) | {Model.MARKOV, Model.SHAPLEY} == set(Model)
