"""Deterministic assignment with GrowthBook's own functions, so SDKs and the server agree.

`growthbook.core` provides the hash (`gbhash`, FNV-1a 32; version 1 and 2), the bucket ranges
(`getBucketRanges`), the pick (`chooseVariation`) and namespaces (`inNamespace`); nothing of
them is reimplemented here. A GrowthBook SDK given the same key, seed, hash version, weights,
coverage and namespace puts the same customer in the same variant (tests reproduce GrowthBook's
cross-SDK cases, packages/sdk-js/test/cases.json).

Stratified assignment (by store or tier) cannot be computed by an SDK: it balances arms within
each stratum with permuted blocks, so it is served by the assign API and stored (sticky).
"""

from __future__ import annotations

from dataclasses import dataclass

from growthbook.core import chooseVariation, gbhash, getBucketRanges, inNamespace

#: Slots per permuted block of stratified assignment (arms balanced every BLOCK arrivals).
BLOCK = 100


@dataclass(frozen=True)
class Design:
    """What assignment needs of an experiment."""

    key: str
    seed: str
    hash_version: int
    weights: list[float]
    coverage: float = 1.0
    namespace: tuple[str, float, float] | None = None
    holdout: float = 0.0


@dataclass(frozen=True)
class Decision:
    """Where a customer falls: `variant` is None outside the experiment; a holdout customer
    gets control's experience and is not analysed."""

    variant: int | None
    bucket: float | None
    reason: str


def bucket(design: Design, hash_value: str) -> float | None:
    """The customer's position in [0, 1) for this experiment (GrowthBook's `gbhash`)."""
    return gbhash(design.seed, hash_value, design.hash_version)


def in_holdout(design: Design, hash_value: str) -> bool:
    """Whether the customer is in the experiment's holdout (its own hash seed, so the holdout
    is independent of the variant split)."""
    if design.holdout <= 0:
        return False
    n = gbhash(f"__holdout_{design.seed}", hash_value, 2)
    return n is not None and n < design.holdout


def decide(design: Design, hash_value: str) -> Decision:
    """GrowthBook's experiment rule: namespace, then coverage and weights, then the holdout."""
    if not hash_value:
        return Decision(None, None, "no_hash_value")
    if design.namespace is not None and not inNamespace(hash_value, design.namespace):
        return Decision(None, None, "namespace")
    n = bucket(design, hash_value)
    if n is None:
        return Decision(None, None, "hash_version")
    ranges = getBucketRanges(len(design.weights), design.coverage, design.weights)
    variant = chooseVariation(n, ranges)
    if variant < 0:
        return Decision(None, n, "coverage")
    if in_holdout(design, hash_value):
        return Decision(None, n, "holdout")
    return Decision(variant, n, "hashed")


def block_slots(weights: list[float], size: int = BLOCK) -> list[int]:
    """`size` slots shared out by weight (largest remainder), e.g. [0.5, 0.5] -> 50 + 50."""
    raw = [w * size for w in weights]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: size - sum(counts)]:
        counts[i] += 1
    return [v for v, c in enumerate(counts) for _ in range(c)]


def stratified_variant(design: Design, stratum: str, arrival: int) -> int:
    """The variant of the `arrival`-th (0-based) customer of a stratum: slot `arrival % BLOCK`
    of that block's permutation, the permutation ordered by GrowthBook's hash so it is fixed by
    the experiment's seed and unpredictable without it."""
    block, pos = divmod(arrival, BLOCK)
    slots = block_slots(design.weights)
    keyed = sorted(
        range(len(slots)),
        key=lambda i: (gbhash(f"{design.seed}:{stratum}:{block}", str(i), 2) or 0.0, i),
    )
    return slots[keyed[pos]]
