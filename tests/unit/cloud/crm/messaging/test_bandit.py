"""The Thompson sampler with seeded RNGs: Beta updates, the shrunk segment prior, convergence on a
known best arm (table), pick frequencies against P(arm is best) computed by integration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from cloud.crm.messaging.bandit import (
    UNIFORM,
    Arm,
    Beta,
    Counts,
    segment_prior,
    thompson,
    thompson_batch,
)


def test_beta_update_mean_and_interval() -> None:
    post = Beta(1, 1).update(Counts(trials=10, successes=3))
    assert (post.alpha, post.beta) == (4, 8)
    assert post.mean == pytest.approx(4 / 12)
    low, high = post.interval(0.9)
    assert low < post.mean < high
    assert stats.beta.cdf(high, 4, 8) - stats.beta.cdf(low, 4, 8) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Counts(trials=2, successes=3), "outside"),
        (lambda: Counts(trials=2, successes=-1), "outside"),
        (lambda: Beta(0, 1), "positive"),
        (lambda: Beta(1, math.inf), "positive"),
        (lambda: segment_prior(Counts(), weight=0), "weight"),
    ],
)
def test_bad_parameters_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("pooled", "weight", "expected"),
    [
        # no data: the uniform prior
        (Counts(0, 0), 10.0, (1.0, 1.0)),
        # little data: the pooled posterior itself (mass 2 + 4 < 10)
        (Counts(4, 1), 10.0, (2.0, 4.0)),
        # much data: its mean (1 + 200) / (2 + 1000), carried by 10 pseudo-observations
        (Counts(1000, 200), 10.0, (10 * 201 / 1002, 10 * 801 / 1002)),
        # a weight under the base prior's mass keeps the base mass
        (Counts(1000, 500), 1.0, (1.0, 1.0)),
    ],
)
def test_segment_prior_is_the_pooled_posterior_shrunk(
    pooled: Counts, weight: float, expected: tuple[float, float]
) -> None:
    prior = segment_prior(pooled, weight=weight)
    assert (prior.alpha, prior.beta) == pytest.approx(expected)


@given(
    trials=st.integers(0, 10**7),
    share=st.floats(0, 1),
    weight=st.floats(0.1, 1000),
)
def test_segment_prior_keeps_the_pooled_mean_and_bounds_its_weight(
    trials: int, share: float, weight: float
) -> None:
    pooled = Counts(trials, int(trials * share))
    prior = segment_prior(pooled, weight=weight)
    assert prior.mean == pytest.approx(Beta(*UNIFORM).update(pooled).mean)
    assert prior.alpha + prior.beta <= max(weight, 2.0) + 1e-9


def _play(rates: list[float], rounds: int, seed: int, prior: list[Beta] | None = None) -> list[int]:
    """Thompson against Bernoulli arms with known rates; the arm played each round."""
    rng, world = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    counts = [Counts() for _ in rates]
    priors = prior or [Beta(1, 1) for _ in rates]
    played = []
    for _ in range(rounds):
        arms = [Arm(str(i), priors[i], counts[i]) for i in range(len(rates))]
        i = int(thompson(arms, rng).name)
        hit = int(world.random() < rates[i])
        counts[i] = Counts(counts[i].trials + 1, counts[i].successes + hit)
        played.append(i)
    return played


@pytest.mark.parametrize(
    ("rates", "best"),
    [
        ([0.10, 0.30, 0.20], 1),
        ([0.50, 0.40], 0),
        ([0.02, 0.03, 0.08, 0.01], 2),
        ([0.05, 0.05, 0.05, 0.05, 0.25], 4),
        ([0.90, 0.80, 0.70], 0),
    ],
)
@pytest.mark.parametrize("seed", [7, 2026])
def test_thompson_converges_on_the_known_best_arm(rates: list[float], best: int, seed: int) -> None:
    played = _play(rates, rounds=1500, seed=seed)
    late = played[-500:]
    assert late.count(best) / len(late) >= 0.8
    # and it explored: every arm was tried at least once
    assert set(played) == set(range(len(rates)))


def test_a_strong_wrong_prior_is_overcome_by_the_persons_own_data() -> None:
    # the segment says arm 0 (mean 0.6 over 10 pseudo-observations); this person answers arm 1
    prior = [Beta(6, 4), Beta(1, 9)]
    played = _play([0.05, 0.5], rounds=800, seed=3, prior=prior)
    assert played[-300:].count(1) / 300 >= 0.8


def test_a_good_prior_starts_on_the_best_arm() -> None:
    prior = [Beta(1, 9), Beta(6, 4), Beta(1, 9)]
    played = _play([0.1, 0.6, 0.1], rounds=30, seed=11, prior=prior)
    assert played[:30].count(1) >= 20
    uninformed = _play([0.1, 0.6, 0.1], rounds=30, seed=11)
    assert played[:30].count(1) > uninformed[:30].count(1)


def _p_best(a: Beta, b: Beta) -> float:
    """P(X_a > X_b) for independent Beta draws, by numerical integration."""
    value, _ = integrate.quad(
        lambda x: stats.beta.pdf(x, a.alpha, a.beta) * stats.beta.cdf(x, b.alpha, b.beta), 0, 1
    )
    return float(value)


@settings(max_examples=25, deadline=None)
@given(s1=st.integers(0, 30), f1=st.integers(0, 30), s2=st.integers(0, 30), f2=st.integers(0, 30))
def test_pick_frequency_matches_the_probability_of_being_best(
    s1: int, f1: int, s2: int, f2: int
) -> None:
    arms = [Arm("a", Beta(1, 1), Counts(s1 + f1, s1)), Arm("b", Beta(1, 1), Counts(s2 + f2, s2))]
    rng = np.random.default_rng(s1 * 1000 + f1 * 100 + s2 * 10 + f2)
    n = 4000
    alpha = np.tile([a.posterior.alpha for a in arms], (n, 1))
    beta = np.tile([a.posterior.beta for a in arms], (n, 1))
    share = float(np.mean(thompson_batch(alpha, beta, rng) == 0))
    # 4000 draws: standard error <= 0.008, so 0.04 is five of them
    assert share == pytest.approx(_p_best(arms[0].posterior, arms[1].posterior), abs=0.04)


def test_thompson_reports_every_arms_draw_and_mean_and_needs_an_arm() -> None:
    arms = [Arm("email", Beta(2, 8), Counts()), Arm("sms", Beta(1, 1), Counts(10, 9))]
    pick = thompson(arms, np.random.default_rng(0))
    assert set(pick.draws) == set(pick.means) == {"email", "sms"}
    assert pick.name == max(pick.draws, key=lambda k: pick.draws[k])
    assert pick.means["sms"] == pytest.approx(10 / 12)
    with pytest.raises(ValueError, match="no arm"):
        thompson([], np.random.default_rng(0))
