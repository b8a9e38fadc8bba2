"""Sample size and MDE (statsmodels.stats.power) against textbook values."""

from __future__ import annotations

import math

import pytest
from scipy.stats import norm

from cloud.crm.experiments.power import plan


def test_cohens_medium_effect_needs_64_per_group() -> None:
    # Cohen (1988), Statistical Power Analysis, Table 2.4.1: d = 0.5, alpha 0.05, power 0.8 -> 64
    p = plan(metric_type="mean", baseline=10, std_dev=10, mde=0.5, n=None, alpha=0.05,
             power=0.8, variants=2, daily_traffic=None)  # fmt: skip
    assert p.per_variant == 64
    assert p.effect_size == pytest.approx(0.5)


@pytest.mark.parametrize(("baseline", "mde"), [(0.1, 0.1), (0.05, 0.2), (0.5, 0.05)])
def test_proportions_arcsine(baseline: float, mde: float) -> None:
    # closed form per group: n = 2 ((z_{1-a/2} + z_{1-b}) / h)^2, h Cohen's h (1988, ch. 6)
    h = 2 * math.asin(math.sqrt(baseline * (1 + mde))) - 2 * math.asin(math.sqrt(baseline))
    per_variant = math.ceil(2 * ((norm.ppf(0.975) + norm.ppf(0.8)) / h) ** 2)
    p = plan(metric_type="proportion", baseline=baseline, std_dev=None, mde=mde, n=None,
             alpha=0.05, power=0.8, variants=3, daily_traffic=500)  # fmt: skip
    assert abs(p.per_variant - per_variant) <= 1
    assert p.total == 3 * p.per_variant
    assert p.days == -(-p.total // 500)


@pytest.mark.parametrize("kind", ["proportion", "mean"])
def test_mde_inverts_sample_size(kind: str) -> None:
    kw = {"baseline": 0.2 if kind == "proportion" else 50.0, "std_dev": 30.0}
    size = plan(
        metric_type=kind,
        mde=0.07,
        n=None,
        alpha=0.05,
        power=0.9,
        variants=2,
        daily_traffic=None,
        **kw,
    )
    back = plan(
        metric_type=kind,
        mde=None,
        n=size.per_variant,
        alpha=0.05,
        power=0.9,
        variants=2,
        daily_traffic=None,
        **kw,
    )
    assert back.mde == pytest.approx(0.07, rel=2e-3)
