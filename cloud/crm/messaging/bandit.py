"""Thompson sampling over Beta-Bernoulli arms (channels, send-hour buckets), with a cold-start
prior pooled from a segment and shrunk. Pure: counts in, choices out; the caller owns the RNG.

An arm's reward is one engagement (opened, clicked or replied within the outcome window) per
message sent on it. With a Beta(a, b) prior and s successes in n trials the posterior is
Beta(a + s, b + n - s); Thompson sampling draws one rate from each arm's posterior and plays the
largest draw, so an arm is played about as often as it is probably the best one.

The segment prior is the pooled Beta(1 + S, 1 + N - S) of the segment's members on that arm,
shrunk to at most `weight` pseudo-observations while keeping its mean: a segment of a million
members must not outweigh what one person does, and a person's own ten messages should already
move their posterior most of the way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: The uninformed prior: a uniform rate.
UNIFORM = (1.0, 1.0)


@dataclass(frozen=True)
class Counts:
    """Trials and successes of one arm."""

    trials: int = 0
    successes: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.successes <= self.trials:
            raise ValueError(f"successes {self.successes} outside 0..trials {self.trials}")


@dataclass(frozen=True)
class Beta:
    """A Beta(alpha, beta) belief about an arm's engagement rate."""

    alpha: float
    beta: float

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and self.beta > 0 and math.isfinite(self.alpha + self.beta)):
            raise ValueError(f"Beta({self.alpha}, {self.beta}) needs finite positive parameters")

    @property
    def mean(self) -> float:
        """The posterior mean rate."""
        return self.alpha / (self.alpha + self.beta)

    def interval(self, mass: float = 0.9) -> tuple[float, float]:
        """The equal-tailed credible interval holding `mass` of the belief."""
        tail = (1.0 - mass) / 2.0
        low, high = stats.beta.ppf([tail, 1.0 - tail], self.alpha, self.beta)
        return float(low), float(high)

    def update(self, counts: Counts) -> Beta:
        """The posterior after `counts`."""
        return Beta(self.alpha + counts.successes, self.beta + counts.trials - counts.successes)


def segment_prior(pooled: Counts, *, weight: float, base: tuple[float, float] = UNIFORM) -> Beta:
    """The cold-start prior from a segment's pooled counts: the pooled posterior's mean, carried
    by at most `weight` pseudo-observations (and never fewer than the base prior's)."""
    if weight <= 0:
        raise ValueError("weight must be positive")
    pooled_post = Beta(*base).update(pooled)
    mass = min(pooled_post.alpha + pooled_post.beta, max(weight, sum(base)))
    return Beta(pooled_post.mean * mass, (1.0 - pooled_post.mean) * mass)


@dataclass(frozen=True)
class Arm:
    """One arm's prior, its own counts and the posterior they give."""

    name: str
    prior: Beta
    counts: Counts

    @property
    def posterior(self) -> Beta:
        """The prior updated with the arm's own counts."""
        return self.prior.update(self.counts)


@dataclass(frozen=True)
class Pick:
    """A Thompson choice: the arm played, every arm's draw and posterior mean."""

    name: str
    draws: Mapping[str, float]
    means: Mapping[str, float]


def thompson(arms: Sequence[Arm], rng: np.random.Generator) -> Pick:
    """Draw a rate from each arm's posterior and play the largest draw (ties: the first arm)."""
    if not arms:
        raise ValueError("no arm to choose from")
    posts = [a.posterior for a in arms]
    draws = rng.beta([p.alpha for p in posts], [p.beta for p in posts])
    best = int(np.argmax(draws))
    return Pick(
        name=arms[best].name,
        draws={a.name: float(d) for a, d in zip(arms, draws, strict=True)},
        means={a.name: p.mean for a, p in zip(arms, posts, strict=True)},
    )


def thompson_batch(alpha: np.ndarray, beta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vectorised Thompson sampling: rows are people, columns arms; the played column per row."""
    return np.asarray(np.argmax(rng.beta(alpha, beta), axis=1))
