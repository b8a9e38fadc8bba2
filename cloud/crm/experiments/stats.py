"""Experiment statistics on sufficient statistics (never on rows): pure functions.

The SQL side hands each variant's n, sums, sums of squares and cross sums; everything here works
on those. Library code is used where it exists:

- Welch's t-test: `scipy.stats.ttest_ind_from_stats(equal_var=False)`;
- two-proportion z-test: `statsmodels.stats.proportion.proportions_ztest`;
- SRM: `scipy.stats.chisquare`; multiple comparisons: `statsmodels.stats.multitest.multipletests`.

What no installed library does is written here, following GrowthBook's `gbstats` (MIT; not a
dependency: it pins numpy<2 and pandas<2, which river cannot share):

- relative lift and ratio metrics by the delta method (gbstats `frequentist/tests.py`,
  `frequentist_variance`; ratio variance as in gbstats `RatioStatistic.variance`);
- Bayesian chance to win and expected loss under a Gaussian posterior of the effect
  (gbstats `bayesian/tests.py`, `EffectBayesianABTest`, `get_risk`);
- always-valid (sequential) intervals and p-values: the asymptotic confidence sequence of
  Howard, Ramdas, McAuliffe and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
  sequences", arXiv:2103.06476 v7, eqs. 155 and 161, as gbstats `SequentialTwoSidedTTest`;
- CUPED (Deng, Xu, Kohavi, Walker 2013, "Improving the sensitivity of online controlled
  experiments by utilizing pre-experiment data") with theta pooled over the arms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

DifferenceType = Literal["relative", "absolute"]
#: gbstats' default tuning parameter of the sequential test (the expected total sample size).
DEFAULT_SEQUENTIAL_TUNING = 5000.0
#: GrowthBook flags a sample ratio mismatch below this chi-square p-value.
SRM_THRESHOLD = 0.001
#: A pre-period mean that differs between arms below this p-value makes CUPED suspect.
IMBALANCE_THRESHOLD = 0.001


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one variant for one metric.

    x is the metric's per-customer value (a ratio metric's numerator), y a ratio metric's
    per-customer denominator, pre the metric in the pre-period (CUPED's covariate).
    """

    n: int
    sum_x: float
    sum_x2: float
    sum_y: float = 0.0
    sum_y2: float = 0.0
    sum_xy: float = 0.0
    sum_pre: float = 0.0
    sum_pre2: float = 0.0
    sum_xpre: float = 0.0


@dataclass(frozen=True)
class Moments:
    """A per-unit mean and variance (so the estimate's variance is variance / n)."""

    n: int
    mean: float
    variance: float


@dataclass(frozen=True)
class Effect:
    """One comparison of a treatment with control."""

    estimate: float
    ci_low: float
    ci_high: float
    std_error: float
    p_value: float


@dataclass(frozen=True)
class BayesResult:
    """Posterior summary of the effect."""

    chance_to_win: float
    expected_loss_control: float
    expected_loss_treatment: float
    ci_low: float
    ci_high: float


def _var(n: int, s: float, s2: float) -> float:
    if n < 2:
        return 0.0
    return max((s2 - s * s / n) / (n - 1), 0.0)


def _cov(n: int, sa: float, sb: float, sab: float) -> float:
    if n < 2:
        return 0.0
    return (sab - sa * sb / n) / (n - 1)


def mean_moments(a: ArmStats) -> Moments:
    """The per-customer mean and its sample variance."""
    mean = a.sum_x / a.n if a.n else 0.0
    return Moments(a.n, mean, _var(a.n, a.sum_x, a.sum_x2))


def ratio_moments(a: ArmStats) -> Moments:
    """Ratio metric sum(x)/sum(y) with its delta-method variance per unit (gbstats
    `RatioStatistic`): var = vx/my^2 - 2 cov mx/my^3 + vy mx^2/my^4."""
    if a.n == 0 or a.sum_y == 0:
        return Moments(a.n, 0.0, 0.0)
    mx, my = a.sum_x / a.n, a.sum_y / a.n
    vx, vy = _var(a.n, a.sum_x, a.sum_x2), _var(a.n, a.sum_y, a.sum_y2)
    cxy = _cov(a.n, a.sum_x, a.sum_y, a.sum_xy)
    var = vx / my**2 - 2 * cxy * mx / my**3 + vy * mx**2 / my**4
    return Moments(a.n, mx / my, max(var, 0.0))


def cuped_theta(arms: list[ArmStats]) -> float:
    """The CUPED coefficient cov(x, pre) / var(pre), pooled over every arm."""
    n = sum(a.n for a in arms)
    sp, sp2 = sum(a.sum_pre for a in arms), sum(a.sum_pre2 for a in arms)
    sx, sxp = sum(a.sum_x for a in arms), sum(a.sum_xpre for a in arms)
    vpre = _var(n, sp, sp2)
    return _cov(n, sx, sp, sxp) / vpre if vpre > 0 else 0.0


def cuped_moments(a: ArmStats, theta: float, pre_mean: float) -> Moments:
    """The arm's mean adjusted by theta * (its pre mean - the pooled pre mean), and the
    variance of x - theta * pre."""
    if a.n == 0:
        return Moments(0, 0.0, 0.0)
    vx, vp = _var(a.n, a.sum_x, a.sum_x2), _var(a.n, a.sum_pre, a.sum_pre2)
    c = _cov(a.n, a.sum_x, a.sum_pre, a.sum_xpre)
    mean = a.sum_x / a.n - theta * (a.sum_pre / a.n - pre_mean)
    return Moments(a.n, mean, max(vx + theta**2 * vp - 2 * theta * c, 0.0))


def difference(a: Moments, b: Moments, kind: DifferenceType) -> tuple[float, float]:
    """Point estimate of b against a and its variance (relative: delta method, gbstats
    `frequentist_variance`)."""
    va, vb = a.variance / a.n, b.variance / b.n
    if kind == "absolute":
        return b.mean - a.mean, va + vb
    est = (b.mean - a.mean) / a.mean
    return est, vb / a.mean**2 + va * b.mean**2 / a.mean**4


def welch_dof(a: Moments, b: Moments) -> float:
    """Welch-Satterthwaite degrees of freedom."""
    va, vb = a.variance / a.n, b.variance / b.n
    den = va**2 / (a.n - 1) + vb**2 / (b.n - 1)
    return (va + vb) ** 2 / den if den > 0 else float(a.n + b.n - 2)


def usable(a: Moments, b: Moments, kind: DifferenceType) -> bool:
    """Whether a comparison is defined: two units an arm, some variance, a non-zero baseline."""
    if a.n < 2 or b.n < 2 or a.variance + b.variance <= 0:
        return False
    return kind == "absolute" or a.mean != 0


def t_test(a: Moments, b: Moments, kind: DifferenceType, alpha: float) -> Effect:
    """Fixed-horizon two-sided t-test with Welch's degrees of freedom (gbstats
    `TwoSidedTTest`). For the absolute difference the p-value is scipy's Welch test."""
    est, var = difference(a, b, kind)
    se = math.sqrt(var)
    dof = welch_dof(a, b)
    if kind == "absolute":
        p = float(
            sps.ttest_ind_from_stats(
                b.mean,
                math.sqrt(b.variance),
                b.n,
                a.mean,
                math.sqrt(a.variance),
                a.n,
                equal_var=False,
            ).pvalue
        )
    else:
        p = float(2 * sps.t.sf(abs(est) / se, dof))
    half = float(sps.t.ppf(1 - alpha / 2, dof)) * se
    return Effect(est, est - half, est + half, se, p)


def z_test_proportions(a: ArmStats, b: ArmStats, kind: DifferenceType, alpha: float) -> Effect:
    """Two-proportion z-test: statsmodels' pooled p-value, an unpooled Wald interval (relative:
    delta method)."""
    ma, mb = mean_moments(a), mean_moments(b)
    pa, pb = ma.mean, mb.mean
    ma = Moments(a.n, pa, pa * (1 - pa))
    mb = Moments(b.n, pb, pb * (1 - pb))
    est, var = difference(ma, mb, kind)
    se = math.sqrt(var)
    _, p = proportions_ztest([b.sum_x, a.sum_x], [b.n, a.n])
    half = float(sps.norm.ppf(1 - alpha / 2)) * se
    return Effect(est, est - half, est + half, se, float(p))


def sequential_rho(alpha: float, tuning: float) -> float:
    """The mixture's rho (Howard et al. eq. 161), tuned for `tuning` total units."""
    la = -2 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1)) / tuning)


def sequential_test(
    a: Moments, b: Moments, kind: DifferenceType, alpha: float, tuning: float
) -> Effect:
    """Always-valid two-sided interval and p-value (gbstats `SequentialTwoSidedTTest`): valid at
    every look, so peeking does not inflate the false-positive rate."""
    est, var = difference(a, b, kind)
    n = a.n + b.n
    rho2 = sequential_rho(alpha, tuning) ** 2
    s2 = var * n
    nr = n * rho2
    half = math.sqrt(s2) * math.sqrt(2 * (nr + 1) / nr * math.log(math.sqrt(nr + 1) / alpha))
    half /= math.sqrt(n)
    st2 = est**2 * n / var
    log_e = rho2 * st2 / (2 * (nr + 1)) - 0.5 * math.log(nr + 1)
    p = 1.0 if log_e <= 0 else min(1.0, math.exp(-log_e))
    return Effect(est, est - half, est + half, math.sqrt(var), p)


def expected_positive(mu: float, sigma: float) -> float:
    """E[max(X, 0)] for X ~ N(mu, sigma^2)."""
    z = mu / sigma
    return float(mu * sps.norm.cdf(z) + sigma * sps.norm.pdf(z))


def bayesian(
    a: Moments,
    b: Moments,
    kind: DifferenceType,
    alpha: float,
    *,
    inverse: bool = False,
    prior_mean: float = 0.0,
    prior_variance: float | None = None,
) -> BayesResult:
    """Gaussian posterior of the effect (gbstats `EffectBayesianABTest`): a flat improper prior
    unless `prior_variance` is given. Chance to win is P(effect > 0) (< 0 for an `inverse`
    metric); expected loss is E[max(-effect, 0)] for shipping the treatment and E[max(effect,
    0)] for keeping control (gbstats `get_risk`), signs swapped for an inverse metric."""
    est, var = difference(a, b, kind)
    if prior_variance is not None:
        prec = 1 / var + 1 / prior_variance
        est = (est / var + prior_mean / prior_variance) / prec
        var = 1 / prec
    sd = math.sqrt(var)
    ctw = float(sps.norm.sf(0, est, sd))
    up, down = expected_positive(est, sd), expected_positive(-est, sd)
    if inverse:
        ctw, up, down = 1 - ctw, down, up
    z = float(sps.norm.ppf(1 - alpha / 2))
    return BayesResult(ctw, up, down, est - z * sd, est + z * sd)


def srm_p_value(counts: list[int], weights: list[float]) -> float:
    """Chi-square goodness of fit of the arms' sizes against their weights."""
    total = sum(counts)
    if total == 0 or len(counts) < 2:
        return 1.0
    w = np.asarray(weights, dtype=float)
    expected = total * w / w.sum()
    return float(sps.chisquare(np.asarray(counts, dtype=float), expected).pvalue)


def imbalance_p_value(a: ArmStats, b: ArmStats) -> float:
    """Welch p-value of the pre-period means of two arms (CUPED's balance check)."""
    va, vb = _var(a.n, a.sum_pre, a.sum_pre2), _var(b.n, b.sum_pre, b.sum_pre2)
    if a.n < 2 or b.n < 2 or va + vb <= 0:
        return 1.0
    return float(
        sps.ttest_ind_from_stats(
            b.sum_pre / b.n,
            math.sqrt(vb),
            b.n,
            a.sum_pre / a.n,
            math.sqrt(va),
            a.n,
            equal_var=False,
        ).pvalue
    )


def adjust(
    p_values: list[float], method: Literal["holm", "bh", "none"], alpha: float
) -> list[float]:
    """Multiple-comparison adjusted p-values (statsmodels: Holm, Benjamini-Hochberg)."""
    if method == "none" or not p_values:
        return list(p_values)
    name = "holm" if method == "holm" else "fdr_bh"
    return [float(p) for p in multipletests(p_values, alpha=alpha, method=name)[1]]
