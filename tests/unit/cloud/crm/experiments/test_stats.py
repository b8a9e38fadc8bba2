"""Statistics against published vectors and brute force.

Sources:
- gbstats (growthbook/growthbook, packages/stats/tests/frequentist/test_tests.py, the version
  with `SampleMeanStatistic`/`ProportionStatistic` and `SequentialTwoSidedTTest(stat_a, stat_b,
  config)`): TestTwoSidedTTest.test_two_sided_ttest, test_two_sided_ttest_absolute,
  test_two_sided_ttest_binom; TestSequentialTTest.test_sequential_test_runs,
  test_sequential_test_runs_prop.
- gbstats packages/stats/tests/bayesian/test_tests.py, TestGaussianEffectABTest's neighbour
  `test_bayesian_effect_ab_test` for GaussianEffectABTest(SampleMeanStatistic(100, 1002.25, 10),
  SampleMeanStatistic(105, 1111.5, 10)): expected 0.05, uplift sd 0.03572, chance to win
  0.91923, risk [0.05131, 0.00131].
- statsmodels, `proportions_ztest` docstring example (statsmodels.org/stable/generated/
  statsmodels.stats.proportion.proportions_ztest.html): 5 of 83 against 12 of 99, p = 0.159.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cloud.crm.experiments import stats
from cloud.crm.experiments.stats import ArmStats, Moments

A = ArmStats(3407, 1396.87, 52377.9767)
B = ArmStats(3461, 2422.7, 134698.29)
R = 5  # gbstats rounds to 5 decimals


def _r(x: float) -> float:
    return round(x, R)


def _prop(n: int, s: int) -> Moments:
    p = s / n
    return Moments(n, p, p * (1 - p))


def test_two_sided_ttest_relative() -> None:
    e = stats.t_test(stats.mean_moments(A), stats.mean_moments(B), "relative", 0.05)
    assert (_r(e.estimate), _r(e.ci_low), _r(e.ci_high)) == (0.70732, -0.03526, 1.44989)
    assert (_r(e.std_error), _r(e.p_value)) == (0.37879, 0.06191)


def test_two_sided_ttest_absolute() -> None:
    e = stats.t_test(stats.mean_moments(A), stats.mean_moments(B), "absolute", 0.05)
    assert (_r(e.estimate), _r(e.ci_low), _r(e.ci_high)) == (0.29, 0.04538, 0.53462)
    assert (_r(e.std_error), _r(e.p_value)) == (0.12478, 0.02016)


def test_two_sided_ttest_binom() -> None:
    e = stats.t_test(_prop(28, 14), _prop(30, 16), "relative", 0.05)
    assert (_r(e.estimate), _r(e.ci_low), _r(e.ci_high)) == (0.06667, -0.47767, 0.61101)
    assert (_r(e.std_error), _r(e.p_value)) == (0.2717, 0.80707)


def test_sequential_test_runs() -> None:
    a = stats.mean_moments(ArmStats(3000, 1396.87, 52377.9767))
    e = stats.sequential_test(a, stats.mean_moments(B), "relative", 0.05, 1000)
    assert (_r(e.estimate), _r(e.ci_low), _r(e.ci_high)) == (0.50336, -0.55844, 1.56516)
    assert (_r(e.std_error), e.p_value) == (0.33341, 1.0)


def test_sequential_test_runs_prop() -> None:
    e = stats.sequential_test(_prop(3000, 1396), _prop(3461, 2422), "relative", 0.05, 5000)
    assert (_r(e.estimate), _r(e.ci_low), _r(e.ci_high)) == (0.50386, 0.40098, 0.60675)
    assert (_r(e.std_error), _r(e.p_value)) == (0.03386, 0.0)


def test_sequential_interval_is_wider_than_fixed_horizon() -> None:
    a, b = stats.mean_moments(A), stats.mean_moments(B)
    fixed = stats.t_test(a, b, "absolute", 0.05)
    seq = stats.sequential_test(a, b, "absolute", 0.05, 5000)
    assert seq.ci_low < fixed.ci_low and seq.ci_high > fixed.ci_high
    assert seq.p_value >= fixed.p_value


def test_bayesian_effect_vector() -> None:
    a = stats.mean_moments(ArmStats(10, 100, 1002.25))
    b = stats.mean_moments(ArmStats(10, 105, 1111.5))
    res = stats.bayesian(a, b, "relative", 0.05)
    assert _r(res.chance_to_win) == 0.91923
    assert (_r(res.expected_loss_control), _r(res.expected_loss_treatment)) == (0.05131, 0.00131)
    assert (round(res.ci_low, 2), round(res.ci_high, 2)) == (-0.02, 0.12)
    inverse = stats.bayesian(a, b, "relative", 0.05, inverse=True)
    assert _r(inverse.chance_to_win) == _r(1 - 0.91923)


def test_proper_prior_shrinks_towards_its_mean() -> None:
    a, b = stats.mean_moments(A), stats.mean_moments(B)
    flat = stats.bayesian(a, b, "relative", 0.05)
    tight = stats.bayesian(a, b, "relative", 0.05, prior_variance=0.01)
    assert abs(tight.ci_high + tight.ci_low) < abs(flat.ci_high + flat.ci_low)


def test_statsmodels_proportions_ztest_docstring_example() -> None:
    e = stats.z_test_proportions(ArmStats(83, 5, 5), ArmStats(99, 12, 12), "absolute", 0.05)
    assert round(e.p_value, 3) == 0.159
    assert e.estimate == pytest.approx(12 / 99 - 5 / 83)


def test_srm() -> None:
    assert stats.srm_p_value([5000, 5000], [0.5, 0.5]) == pytest.approx(1.0)
    assert stats.srm_p_value([5000, 5400], [0.5, 0.5]) < stats.SRM_THRESHOLD
    assert stats.srm_p_value([2000, 8000], [0.2, 0.8]) == pytest.approx(1.0)
    assert stats.srm_p_value([0, 0], [0.5, 0.5]) == 1.0


def test_multiple_comparison_adjustment() -> None:
    p = [0.01, 0.04, 0.03]
    assert stats.adjust(p, "holm", 0.05) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.adjust(p, "bh", 0.05) == pytest.approx([0.03, 0.04, 0.04])
    assert stats.adjust(p, "none", 0.05) == p


def _sums(x: np.ndarray, y: np.ndarray, pre: np.ndarray) -> ArmStats:
    return ArmStats(
        len(x), float(x.sum()), float((x * x).sum()), float(y.sum()), float((y * y).sum()),
        float((x * y).sum()), float(pre.sum()), float((pre * pre).sum()), float((x * pre).sum()),
    )  # fmt: skip


values = arrays(np.float64, st.integers(3, 60), elements=st.floats(0, 1000, width=32))


@settings(max_examples=60, deadline=None)
@given(values, st.floats(0.1, 5))
def test_moments_from_sums_equal_numpy(x: np.ndarray, scale: float) -> None:
    y = x * scale + 1.0
    pre = np.sqrt(x)
    arm = _sums(x, y, pre)
    m = stats.mean_moments(arm)
    assert m.mean == pytest.approx(x.mean(), rel=1e-9, abs=1e-9)
    assert m.variance == pytest.approx(x.var(ddof=1), rel=1e-6, abs=1e-6)
    r = stats.ratio_moments(arm)
    assert r.mean == pytest.approx(x.sum() / y.sum(), rel=1e-9)
    # delta method by brute force: the variance of the linearised per-unit values
    lin = (x - r.mean * y) / y.mean()
    assert r.variance == pytest.approx(lin.var(ddof=1), rel=1e-6, abs=1e-6)
    theta = stats.cuped_theta([arm])
    cm = stats.cuped_moments(arm, theta, float(pre.mean()))
    assert cm.variance == pytest.approx((x - theta * pre).var(ddof=1), rel=1e-6, abs=1e-5)
    assert cm.variance <= m.variance * (1 + 1e-9) + 1e-9


def test_cuped_reduces_variance_and_keeps_the_effect() -> None:
    rng = np.random.default_rng(7)
    pre_a, pre_b = rng.normal(10, 3, 5000), rng.normal(10, 3, 5000)
    xa = pre_a + rng.normal(0, 1, 5000)
    xb = pre_b + 0.2 + rng.normal(0, 1, 5000)
    a, b = _sums(xa, xa, pre_a), _sums(xb, xb, pre_b)
    theta = stats.cuped_theta([a, b])
    assert 0.9 < theta < 1.1
    pm = float(np.concatenate([pre_a, pre_b]).mean())
    ca, cb = stats.cuped_moments(a, theta, pm), stats.cuped_moments(b, theta, pm)
    plain = stats.t_test(stats.mean_moments(a), stats.mean_moments(b), "absolute", 0.05)
    adj = stats.t_test(ca, cb, "absolute", 0.05)
    assert adj.std_error < plain.std_error / 2
    assert abs(adj.estimate - 0.2) < 0.06
    assert stats.imbalance_p_value(a, b) > stats.IMBALANCE_THRESHOLD
    shifted = _sums(xb, xb, pre_b + 1.0)
    assert stats.imbalance_p_value(a, shifted) < stats.IMBALANCE_THRESHOLD


def test_undefined_comparisons_are_refused_not_nan() -> None:
    one = Moments(1, 1.0, 0.0)
    flat = Moments(10, 1.0, 0.0)
    zero = Moments(10, 0.0, 1.0)
    assert not stats.usable(one, flat, "absolute")
    assert not stats.usable(flat, flat, "absolute")
    assert not stats.usable(zero, Moments(10, 1.0, 1.0), "relative")
    assert stats.usable(zero, Moments(10, 1.0, 1.0), "absolute")
    assert math.isfinite(stats.ratio_moments(ArmStats(5, 3.0, 3.0)).mean)
