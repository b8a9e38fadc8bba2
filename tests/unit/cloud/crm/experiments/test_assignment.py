"""Assignment reproduces GrowthBook's cross-SDK test cases.

Source of every expected value below: growthbook/growthbook, packages/sdk-js/test/cases.json
(specVersion 0.5.4, commit 021bf498f75c8491c156184ca1b3a1fbafa1d64e), sections `hash`,
`getBucketRange`, `chooseVariation`, `inNamespace`, `run` and `stickyBucket`. Every GrowthBook
SDK (JS, Python, Kotlin, Swift, ...) runs the same file, so matching it means the web and app
SDKs put a customer where the server does.
"""

from __future__ import annotations

from collections import Counter

import pytest
from growthbook.core import chooseVariation, gbhash, getBucketRanges, inNamespace
from hypothesis import given
from hypothesis import strategies as st

from cloud.crm.experiments.assignment import (
    BLOCK,
    Design,
    block_slots,
    decide,
    stratified_variant,
)

HASH = [
    ("", "a", 1, 0.22),
    ("", "b", 1, 0.077),
    ("b", "a", 1, 0.946),
    ("ef", "d", 1, 0.652),
    ("asdf", "8952klfjas09ujk", 1, 0.549),
    ("", "123", 1, 0.011),
    ("", '___)((*":&', 1, 0.563),
    ("seed", "a", 2, 0.0505),
    ("seed", "b", 2, 0.2696),
    ("foo", "ab", 2, 0.2575),
    ("foo", "def", 2, 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 2, 0.124),
    ("90850943850283058242805", "123", 2, 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 2, 0.0128),
    ("abc", "def", 99, None),
]


@pytest.mark.parametrize(("seed", "value", "version", "expected"), HASH)
def test_hash_matches_growthbook(seed: str, value: str, version: int, expected: float) -> None:
    got = gbhash(seed, value, version)
    assert got == (pytest.approx(expected) if expected is not None else None)


BUCKET_RANGES = [
    ("normal 50/50", (2, 1, None), [(0, 0.5), (0.5, 1)]),
    ("reduced coverage", (2, 0.5, None), [(0, 0.25), (0.5, 0.75)]),
    ("zero coverage", (2, 0, None), [(0, 0), (0.5, 0.5)]),
    ("4 variations", (4, 1, None), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ("uneven weights", (2, 1, [0.4, 0.6]), [(0, 0.4), (0.4, 1)]),
    ("uneven, 3", (3, 1, [0.2, 0.3, 0.5]), [(0, 0.2), (0.2, 0.5), (0.5, 1)]),
    ("uneven, reduced, 3", (3, 0.2, [0.2, 0.3, 0.5]), [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
    ("negative coverage", (2, -0.2, None), [(0, 0), (0.5, 0.5)]),
    ("coverage above 1", (2, 1.5, None), [(0, 0.5), (0.5, 1)]),
    ("weights sum below 1", (2, 1, [0.4, 0.1]), [(0, 0.5), (0.5, 1)]),
    ("weights sum above 1", (2, 1, [0.7, 0.6]), [(0, 0.5), (0.5, 1)]),
    ("weights length", (4, 1, [0.4, 0.4, 0.2]), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ("sum almost 1", (2, 1, [0.4, 0.5999]), [(0, 0.4), (0.4, 0.9999)]),
]


@pytest.mark.parametrize(("name", "args", "expected"), BUCKET_RANGES)
def test_bucket_ranges_match_growthbook(
    name: str, args: tuple[int, float, list[float] | None], expected: list[tuple[float, float]]
) -> None:
    got = getBucketRanges(*args)
    flat = [x for r in expected for x in r]
    assert [x for r in got for x in r] == pytest.approx(flat), name


EVEN, REDUCED = [(0, 0.5), (0.5, 1)], [(0, 0.25), (0.5, 0.75)]
CHOOSE = [
    (0.2, EVEN, 0), (0.4, EVEN, 0), (0.6, EVEN, 1), (0.8, EVEN, 1), (0, EVEN, 0), (0.5, EVEN, 1),
    (0.2, REDUCED, 0), (0.4, REDUCED, -1), (0.6, REDUCED, 1), (0.8, REDUCED, -1),
    (0.25, REDUCED, -1), (0.5, REDUCED, 1), (0.5, [(0, 0.5), (0.5, 0.5), (0.5, 1)], 2),
]  # fmt: skip


@pytest.mark.parametrize(("n", "ranges", "expected"), CHOOSE)
def test_choose_variation_matches_growthbook(
    n: float, ranges: list[tuple[float, float]], expected: int
) -> None:
    assert chooseVariation(n, ranges) == expected


NAMESPACES = [
    ("1", ("namespace1", 0, 0.4), False), ("1", ("namespace1", 0.4, 1), True),
    ("1", ("namespace2", 0, 0.4), False), ("1", ("namespace2", 0.4, 1), True),
    ("2", ("namespace1", 0, 0.4), False), ("2", ("namespace1", 0.4, 1), True),
    ("2", ("namespace2", 0, 0.4), False), ("2", ("namespace2", 0.4, 1), True),
    ("3", ("namespace1", 0, 0.4), False), ("3", ("namespace1", 0.4, 1), True),
    ("3", ("namespace2", 0, 0.4), True), ("3", ("namespace2", 0.4, 1), False),
    ("4", ("namespace1", 0, 0.4), False), ("4", ("namespace1", 0.4, 1), True),
    ("4", ("namespace2", 0, 0.4), True), ("4", ("namespace2", 0.4, 1), False),
]  # fmt: skip


@pytest.mark.parametrize(("user", "namespace", "expected"), NAMESPACES)
def test_namespace_matches_growthbook(
    user: str, namespace: tuple[str, float, float], expected: bool
) -> None:
    assert inNamespace(user, namespace) is expected
    # and our decision honours it the same way
    design = Design("my-test", "my-test", 1, [0.5, 0.5], namespace=namespace)
    assert (decide(design, user).reason != "namespace") is expected


# `run` cases of cases.json: experiment key "my-test" (the seed), hash version 1, ids "1".."9";
# None where the case says inExperiment false.
RUN = [
    ([0.5, 0.5], 1.0, [1, 0, 0, 1, 1, 1, 0, 1, 0]),
    ([0.1, 0.9], 1.0, [1, 1, 0, 1, 1, 1, 0, 1, 1]),
    ([0.5, 0.5], 0.4, [None, 0, 0, None, 1, None, 0, 1, None]),
    ([1 / 3, 1 / 3, 1 / 3], 1.0, [2, 0, 0, 2, 1, 2, 0, 1, 0]),
]


@pytest.mark.parametrize(("weights", "coverage", "expected"), RUN)
def test_experiment_run_cases(
    weights: list[float], coverage: float, expected: list[int | None]
) -> None:
    design = Design("my-test", "my-test", 1, weights, coverage=coverage)
    assert [decide(design, str(i)).variant for i in range(1, 10)] == expected


def test_seeded_v2_cases() -> None:
    # run: "Uses seed with default weights/coverage" and stickyBucket: bucket 0.6468 / 0.9943
    assert decide(Design("key", "foo", 2, [0.5, 0.5]), "1").variant == 1
    three = Design("feature-exp", "feature-exp", 2, [0.3334, 0.3333, 0.3333])
    assert decide(three, "d123") == decide(three, "d123")
    assert (decide(three, "d123").bucket, decide(three, "d123").variant) == (0.6468, 1)
    assert (decide(three, "i123").bucket, decide(three, "i123").variant) == (0.9943, 2)


def test_empty_id_is_not_in_the_experiment() -> None:
    assert decide(Design("my-test", "my-test", 1, [0.5, 0.5]), "").variant is None


def test_holdout_takes_its_share_and_keeps_the_split_of_the_others() -> None:
    design = Design("h", "h", 2, [0.5, 0.5], holdout=0.2)
    reasons = Counter(decide(design, str(i)).reason for i in range(1, 20_001))
    assert 0.18 < reasons["holdout"] / 20_000 < 0.22
    plain = Design("h", "h", 2, [0.5, 0.5])
    for i in range(1, 500):
        d = decide(design, str(i))
        if d.reason == "hashed":
            assert d.variant == decide(plain, str(i)).variant


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=6))
def test_block_slots_follow_the_weights(raw: list[int]) -> None:
    total = sum(raw) or 1
    weights = [r / total for r in raw] if sum(raw) else [1 / len(raw)] * len(raw)
    slots = block_slots(weights)
    assert len(slots) == BLOCK
    counts = Counter(slots)
    for v, w in enumerate(weights):
        assert abs(counts.get(v, 0) - w * BLOCK) < 1


def test_stratified_is_balanced_in_every_stratum_and_deterministic() -> None:
    design = Design("s", "s", 2, [0.3, 0.7])
    for stratum in ("store-a", "store-b", "gold"):
        got = [stratified_variant(design, stratum, i) for i in range(2 * BLOCK)]
        assert Counter(got[:BLOCK]) == {0: 30, 1: 70}
        assert Counter(got[BLOCK:]) == {0: 30, 1: 70}
        assert got == [stratified_variant(design, stratum, i) for i in range(2 * BLOCK)]
    a = [stratified_variant(design, "store-a", i) for i in range(BLOCK)]
    b = [stratified_variant(design, "store-b", i) for i in range(BLOCK)]
    assert a != b  # each stratum has its own permutation
