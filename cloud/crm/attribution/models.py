"""Attribution models as pure functions over journeys: heuristic (first, last, linear, time decay,
position-based), data-driven Markov chains (removal effect, first and higher order) and Shapley
values. Credits are returned per touch key (a channel, a campaign, ...), and every model's
credits for a set of converting journeys sum to their conversions (or their value).

A journey is the ordered touches one person had before a conversion, within the lookback window
(`converted=True`, with the conversion's value), or the touches of a person who did not convert
(`converted=False`; the data-driven models need them, the heuristic ones ignore them).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import combinations, pairwise

import numpy as np

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"


class Model(StrEnum):
    """The attribution models."""

    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"
    MARKOV = "markov"
    SHAPLEY = "shapley"


@dataclass(frozen=True)
class Touch:
    """One marketing touch: its key (channel, campaign...) and when it happened."""

    key: str
    at: datetime


@dataclass(frozen=True)
class Journey:
    """Touches in time order, and whether (and for how much) they ended in a conversion."""

    touches: tuple[Touch, ...]
    converted: bool = True
    value: float = 1.0
    converted_at: datetime | None = None
    weight: float = 1.0  # how many identical journeys this one stands for (aggregated paths)


Credits = dict[str, float]


def _add(credits: Credits, key: str, amount: float) -> None:
    credits[key] = credits.get(key, 0.0) + amount


def _weights(journey: Journey, model: Model, half_life_days: float) -> list[float]:
    """Share of the conversion each touch of one journey gets (summing to 1)."""
    n = len(journey.touches)
    if model is Model.FIRST_TOUCH:
        return [1.0] + [0.0] * (n - 1)
    if model is Model.LAST_TOUCH:
        return [0.0] * (n - 1) + [1.0]
    if model is Model.LINEAR:
        return [1.0 / n] * n
    if model is Model.POSITION_BASED:  # 40 % first, 40 % last, 20 % shared by the middle
        if n == 1:
            return [1.0]
        if n == 2:
            return [0.5, 0.5]
        return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]
    if model is Model.TIME_DECAY:  # weight 2^(-age / half-life), age before the conversion
        end = journey.converted_at or journey.touches[-1].at
        raw = [
            math.pow(2.0, -max((end - t.at).total_seconds(), 0.0) / 86400.0 / half_life_days)
            for t in journey.touches
        ]
        total = sum(raw)
        return [w / total for w in raw]
    raise ValueError(f"{model} is not a heuristic model")


def heuristic(journeys: Iterable[Journey], model: Model, *, half_life_days: float = 7.0) -> Credits:
    """Credits of a rule-based model over the converting journeys (value-weighted)."""
    credits: Credits = {}
    for journey in journeys:
        if not journey.converted or not journey.touches:
            continue
        for touch, w in zip(journey.touches, _weights(journey, model, half_life_days), strict=True):
            _add(credits, touch.key, w * journey.value)
    return credits


def per_touch(journey: Journey, model: Model, *, half_life_days: float = 7.0) -> list[float]:
    """Each touch's share of one converting journey under a heuristic model."""
    return [w * journey.value for w in _weights(journey, model, half_life_days)]


# ---------------------------------------------------------------------------- Markov chains


@dataclass
class MarkovResult:
    """Removal effects by channel, the chain's conversion probability, and the credits."""

    conversion_probability: float
    removal_effects: dict[str, float]
    credits: Credits
    order: int
    transitions: dict[tuple[str, str], float] = field(default_factory=dict)


def _states(keys: Sequence[str], order: int) -> list[str]:
    """The chain's states along a path: for order k, the last k keys joined by '>'."""
    return [">".join(keys[max(0, i - order + 1) : i + 1]) for i in range(len(keys))]


def _conversion_probability(
    counts: dict[str, defaultdict[str, float]], removed: str | None, order: int
) -> float:
    """P(reaching conversion from start) in the chain of these transition counts, with every
    state that contains the `removed` key redirected to null (the removal effect's chain)."""
    states = sorted({s for s in counts} | {t for c in counts.values() for t in c})
    transient = [s for s in states if s not in (CONVERSION, NULL)]
    index = {s: i for i, s in enumerate(transient)}

    def gone(state: str) -> bool:
        return removed is not None and state not in (START,) and removed in state.split(">")

    n = len(transient)
    q = np.zeros((n, n))
    r = np.zeros(n)  # one-step probability of conversion
    for s in transient:
        row = counts.get(s)
        if gone(s) or not row:
            continue  # a removed (or dead-end) state leads nowhere: absorbed as null
        total = sum(row.values())
        for t, c in row.items():
            p = c / total
            if t == CONVERSION:
                r[index[s]] += p
            elif t != NULL and not gone(t):
                q[index[s], index[t]] += p
    # absorption probabilities: x = r + Q x  =>  (I - Q) x = r
    x = np.linalg.solve(np.eye(n) - q, r)
    return float(x[index[START]])


def markov(journeys: Iterable[Journey], *, order: int = 1) -> MarkovResult:
    """Markov-chain attribution: each channel's removal effect (the share of conversions lost
    when the channel is removed from the chain), conversions shared in proportion to them."""
    if order < 1:
        raise ValueError("order must be at least 1")
    counts: dict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
    conversions = 0.0
    keys: set[str] = set()
    for journey in journeys:
        path = [t.key for t in journey.touches]
        if not path:
            continue
        keys.update(path)
        states = [START, *_states(path, order), CONVERSION if journey.converted else NULL]
        for a, b in pairwise(states):
            counts[a][b] += journey.weight  # the chain counts journeys; value is shared at the end
        if journey.converted:
            conversions += journey.value
    if not keys:
        return MarkovResult(0.0, {}, {}, order)
    base = _conversion_probability(counts, None, order)
    effects: dict[str, float] = {}
    for key in sorted(keys):
        without = _conversion_probability(counts, key, order)
        effects[key] = 1.0 - without / base if base > 0 else 0.0
    total_effect = sum(effects.values())
    credits = (
        {k: conversions * e / total_effect for k, e in effects.items()} if total_effect else {}
    )
    transitions = {
        (a, b): c / sum(row.values()) for a, row in counts.items() for b, c in row.items()
    }
    return MarkovResult(base, effects, credits, order, transitions)


# ---------------------------------------------------------------------------- Shapley values


def shapley(journeys: Iterable[Journey], *, max_keys: int = 15) -> Credits:
    """Shapley values of the cooperative game v(S) = conversions (value) of the journeys whose
    set of touch keys is exactly S, summed over subsets: v(S) = sum_{T subset of S} w(T)
    (Zhao et al., 2018, "Shapley value methods for attribution modeling in online advertising").
    Credits sum to the conversions (efficiency). Exact over all subsets, up to `max_keys` keys."""
    worth: defaultdict[frozenset[str], float] = defaultdict(float)
    for journey in journeys:
        if journey.converted and journey.touches:
            worth[frozenset(t.key for t in journey.touches)] += journey.value
    keys = sorted({k for s in worth for k in s})
    n = len(keys)
    if n == 0:
        return {}
    if n > max_keys:
        raise ValueError(f"{n} distinct touch keys; exact Shapley values allow at most {max_keys}")
    # With v(S) = sum of w(T) over T subset of S, each coalition T's worth is shared equally by
    # its members (the Harsanyi dividend form): phi_k = sum_{T containing k} w(T) / |T|.
    credits: Credits = dict.fromkeys(keys, 0.0)
    for coalition, w in worth.items():
        for k in coalition:
            credits[k] += w / len(coalition)
    return credits


def shapley_by_enumeration(journeys: Iterable[Journey]) -> Credits:
    """The same Shapley values from the textbook formula over every ordering's marginal
    contribution (exponential; for tests and small key sets)."""
    worth: defaultdict[frozenset[str], float] = defaultdict(float)
    for journey in journeys:
        if journey.converted and journey.touches:
            worth[frozenset(t.key for t in journey.touches)] += journey.value
    keys = sorted({k for s in worth for k in s})
    n = len(keys)

    def v(coalition: frozenset[str]) -> float:
        return sum(w for t, w in worth.items() if t <= coalition)

    credits: Credits = {}
    for k in keys:
        others = [x for x in keys if x != k]
        total = 0.0
        for size in range(len(others) + 1):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in combinations(others, size):
                s = frozenset(subset)
                total += weight * (v(s | {k}) - v(s))
        credits[k] = total
    return credits


HEURISTIC = (
    Model.FIRST_TOUCH,
    Model.LAST_TOUCH,
    Model.LINEAR,
    Model.TIME_DECAY,
    Model.POSITION_BASED,
)


def attribute(
    journeys: list[Journey], model: Model, *, half_life_days: float = 7.0, order: int = 1
) -> Credits:
    """Credits of any model over these journeys."""
    run: dict[Model, Callable[[], Credits]] = {
        Model.MARKOV: lambda: markov(journeys, order=order).credits,
        Model.SHAPLEY: lambda: shapley(journeys),
    }
    if model in run:
        return run[model]()
    return heuristic(journeys, model, half_life_days=half_life_days)
