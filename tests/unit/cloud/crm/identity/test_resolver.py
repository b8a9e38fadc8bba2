"""The pure resolver: properties against a brute-force reference of the documented rules."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.crm.identity.reconcile import plan_profiles
from cloud.crm.identity.resolver import resolve
from cloud.crm.identity.rules import IdentityRules

RULES = IdentityRules()
Rec = tuple[int, list[tuple[str, str]]]


def reference(records: list[Rec], blocked: set[tuple[str, str]]) -> list[list[int]]:
    """The rules of resolver.py written the slow, obvious way."""
    groups = [{rid} for rid, _ in records]
    ids = dict(records)

    def join(pred: object) -> None:
        changed = True
        while changed:
            changed = False
            for i in range(len(groups)):
                for j in range(i + 1, len(groups)):
                    if groups[i] and groups[j] and pred(groups[i], groups[j]):  # type: ignore[operator]
                        groups[i] |= groups[j]
                        groups[j] = set()
                        changed = True

    def keys(g: set[int], strong: bool) -> set[tuple[str, str]]:
        return {
            k for r in g for k in ids[r] if (k[0] != "device_id") == strong and k not in blocked
        }

    def identified(g: set[int]) -> bool:
        return any(k[0] != "device_id" for r in g for k in ids[r])

    join(lambda a, b: bool(keys(a, True) & keys(b, True)))
    join(
        lambda a, b: (
            not identified(a) and not identified(b) and bool(keys(a, False) & keys(b, False))
        )
    )
    anon = [g for g in groups if g and not identified(g)]
    for g in anon:
        touching = [h for h in groups if h and identified(h) and keys(h, False) & keys(g, False)]
        if len(touching) == 1:
            touching[0] |= g
            g.clear()
    return sorted(sorted(g) for g in groups if g)


_kind = st.sampled_from(["email", "phone", "device_id"])
_records = st.lists(
    st.lists(st.tuples(_kind, st.sampled_from("abcd")), max_size=3, unique=True),
    min_size=1,
    max_size=9,
)


@settings(max_examples=300, deadline=None)
@given(
    raw=_records,
    blocked=st.sets(st.tuples(_kind, st.sampled_from("abcd")), max_size=2),
    seed=st.integers(0, 10**6),
)
def test_matches_reference_and_is_order_independent(
    raw: list[list[tuple[str, str]]], blocked: set[tuple[str, str]], seed: int
) -> None:
    records: list[Rec] = list(enumerate(raw, start=1))
    expected = reference(records, blocked)
    assert resolve(records, RULES, blocked) == expected
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    assert resolve(shuffled, RULES, blocked) == expected


def test_household_tablet_and_anonymous_visits() -> None:
    recs: list[Rec] = [
        (1, [("email", "ann"), ("device_id", "tab")]),
        (2, [("email", "bob"), ("device_id", "tab")]),
        (3, [("device_id", "tab")]),
        (4, [("device_id", "phone")]),
        (5, [("device_id", "phone"), ("app_user_id", "u5")]),
    ]
    assert resolve(recs, RULES) == [[1], [2], [3], [4, 5]]


def test_plan_keeps_the_lowest_profile_and_absorbs_the_rest() -> None:
    plans = plan_profiles([[1, 2, 3], [4]], {1: 7, 2: 5, 3: None, 4: 5})
    assert plans[0].profile_id == 5 and plans[0].absorbed == [7]
    assert plans[0].moved_from == {7: [1]}
    assert plans[1].profile_id is None and plans[1].moved_from == {5: [4]}  # a split
    assert plans[1].absorbed == []
