"""Sample size, minimum detectable effect and duration (statsmodels.stats.power).

Proportions use the normal approximation on Cohen's h (`NormalIndPower` with
`proportion_effectsize`), means the two-sample t-test on Cohen's d (`TTestIndPower`). With k
variants each treatment is compared with control at the same alpha (no correction is assumed;
divide alpha by k-1 for Bonferroni).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize


@dataclass(frozen=True)
class Plan:
    """Sample size per variant, total, the relative and absolute MDE, the effect size, days."""

    per_variant: int
    total: int
    mde: float
    mde_absolute: float
    effect_size: float
    days: int | None


def _size(
    kind: str, baseline: float, std_dev: float | None, mde: float, alpha: float, power: float
) -> tuple[float, float]:
    if kind == "proportion":
        target = min(baseline * (1 + mde), 1 - 1e-9)
        h = abs(float(proportion_effectsize(target, baseline)))
        return float(NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power)), h
    assert std_dev is not None
    d = abs(baseline * mde) / std_dev
    return float(TTestIndPower().solve_power(effect_size=d, alpha=alpha, power=power)), d


def _mde(
    kind: str, baseline: float, std_dev: float | None, n: int, alpha: float, power: float
) -> tuple[float, float]:
    if kind == "proportion":
        h = float(NormalIndPower().solve_power(nobs1=n, alpha=alpha, power=power))
        # invert h = 2 asin(sqrt(p2)) - 2 asin(sqrt(p1)) for p2 above the baseline
        angle = min(math.asin(math.sqrt(baseline)) + h / 2, math.pi / 2)
        return math.sin(angle) ** 2 / baseline - 1, h
    assert std_dev is not None
    d = float(TTestIndPower().solve_power(nobs1=n, alpha=alpha, power=power))
    return d * std_dev / abs(baseline), d


def plan(
    *,
    metric_type: str,
    baseline: float,
    std_dev: float | None,
    mde: float | None,
    n: int | None,
    alpha: float,
    power: float,
    variants: int,
    daily_traffic: int | None,
) -> Plan:
    """Give `mde` (relative) for the size, or `n` per variant for the MDE."""
    if mde is not None:
        size, effect = _size(metric_type, baseline, std_dev, mde, alpha, power)
        per = math.ceil(size)
    else:
        assert n is not None
        per = n
        mde, effect = _mde(metric_type, baseline, std_dev, n, alpha, power)
    total = per * variants
    days = math.ceil(total / daily_traffic) if daily_traffic else None
    return Plan(per, total, mde, abs(baseline * mde), effect, days)
