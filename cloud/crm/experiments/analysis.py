"""From per-variant sufficient statistics to the results a marketer reads (pure).

Every number that leaves here is finite or null: a comparison that is not defined (an arm under
two customers, no variance, a zero baseline for a relative lift) is null with a warning.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field

from cloud.crm.experiments import stats
from cloud.crm.experiments.schemas import Analysis, Design, Metric
from cloud.crm.experiments.stats import ArmStats, Moments


class Interval(BaseModel):
    """An estimate with its interval and p-value."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


class Comparison(BaseModel):
    """A treatment against control for one metric."""

    variant: int
    variant_key: str
    absolute: Interval
    relative: Interval
    p_value_adjusted: float | None = Field(description="After the multiple-comparison correction.")
    significant: bool | None
    chance_to_win: float | None = None
    expected_loss: float | None = Field(default=None, description="Of shipping the treatment.")
    expected_loss_control: float | None = Field(default=None, description="Of keeping control.")


class ArmSummary(BaseModel):
    """One variant's value of a metric."""

    variant: int
    variant_key: str
    n: int
    mean: float | None


class Cuped(BaseModel):
    """CUPED's coefficient and the pre-period balance check."""

    theta: float
    imbalance_p_value: float
    imbalance_flagged: bool


class MetricResult(BaseModel):
    """All comparisons of one metric."""

    name: str
    role: Literal["primary", "guardrail"]
    kind: str
    arms: list[ArmSummary]
    comparisons: list[Comparison]
    cuped: Cuped | None = None
    warnings: list[str] = Field(default_factory=list)


class Exposure(BaseModel):
    """Units per variant."""

    variant: int
    variant_key: str
    n: int
    expected_share: float


class Srm(BaseModel):
    """Sample ratio mismatch (chi-square against the weights)."""

    p_value: float
    flagged: bool


class Results(BaseModel):
    """An experiment's results."""

    experiment_id: int
    engine: Literal["frequentist", "bayesian"]
    sequential: bool
    alpha: float
    correction: str
    exposures: list[Exposure]
    holdout: int
    srm: Srm
    metrics: list[MetricResult]


def _f(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _interval(effect: stats.Effect | None) -> Interval:
    if effect is None:
        return Interval(estimate=None, ci_low=None, ci_high=None, p_value=None)
    return Interval(
        estimate=_f(effect.estimate),
        ci_low=_f(effect.ci_low),
        ci_high=_f(effect.ci_high),
        p_value=_f(effect.p_value),
    )


def _effect(
    metric: Metric,
    a: ArmStats,
    b: ArmStats,
    ma: Moments,
    mb: Moments,
    kind: stats.DifferenceType,
    cfg: Analysis,
    plain: bool,
) -> stats.Effect | None:
    if not stats.usable(ma, mb, kind):
        return None
    if cfg.sequential:
        return stats.sequential_test(ma, mb, kind, cfg.alpha, cfg.sequential_tuning)
    if metric.kind == "conversion" and plain:
        return stats.z_test_proportions(a, b, kind, cfg.alpha)
    return stats.t_test(ma, mb, kind, cfg.alpha)


def _moments(
    metric: Metric, arms: dict[int, ArmStats], cfg: Analysis
) -> tuple[dict[int, Moments], Cuped | None]:
    if metric.kind == "ratio":
        return {v: stats.ratio_moments(a) for v, a in arms.items()}, None
    if not cfg.cuped:
        return {v: stats.mean_moments(a) for v, a in arms.items()}, None
    theta = stats.cuped_theta(list(arms.values()))
    n = sum(a.n for a in arms.values())
    pre_mean = sum(a.sum_pre for a in arms.values()) / n if n else 0.0
    imbalance = min(
        (stats.imbalance_p_value(arms[0], a) for v, a in arms.items() if v != 0), default=1.0
    )
    cuped = Cuped(
        theta=_f(theta) or 0.0,
        imbalance_p_value=imbalance,
        imbalance_flagged=imbalance < stats.IMBALANCE_THRESHOLD,
    )
    return {v: stats.cuped_moments(a, theta, pre_mean) for v, a in arms.items()}, cuped


def metric_result(
    metric: Metric, role: Literal["primary", "guardrail"], design: Design, arms: dict[int, ArmStats]
) -> MetricResult:
    """Compare every treatment with control (variant 0); p-values not yet corrected."""
    cfg = design.analysis
    keys = [v.key for v in design.variants]
    moments, cuped = _moments(metric, arms, cfg)
    warnings = []
    if cuped is not None and cuped.imbalance_flagged:
        warnings.append("the pre-period means differ between arms: CUPED may bias the estimate")
    comparisons = []
    plain = cuped is None
    for v in range(1, len(keys)):
        a, b, ma, mb = arms[0], arms[v], moments[0], moments[v]
        absolute = _effect(metric, a, b, ma, mb, "absolute", cfg, plain)
        relative = _effect(metric, a, b, ma, mb, "relative", cfg, plain)
        if absolute is None:
            warnings.append(f"{keys[v]}: not enough data (two customers an arm with some spread)")
        chosen = relative if cfg.difference == "relative" else absolute
        comp = Comparison(
            variant=v,
            variant_key=keys[v],
            absolute=_interval(absolute),
            relative=_interval(relative),
            p_value_adjusted=None,
            significant=None,
        )
        if cfg.engine == "bayesian" and chosen is not None:
            bayes = stats.bayesian(
                ma,
                mb,
                cfg.difference,
                cfg.alpha,
                inverse=metric.inverse,
                prior_variance=cfg.prior_variance,
            )
            comp.chance_to_win = _f(bayes.chance_to_win)
            comp.expected_loss = _f(bayes.expected_loss_treatment)
            comp.expected_loss_control = _f(bayes.expected_loss_control)
            target = comp.relative if cfg.difference == "relative" else comp.absolute
            target.ci_low, target.ci_high = _f(bayes.ci_low), _f(bayes.ci_high)
        comparisons.append(comp)
    summaries = [
        ArmSummary(variant=v, variant_key=keys[v], n=arms[v].n, mean=_f(moments[v].mean))
        for v in range(len(keys))
    ]
    return MetricResult(
        name=metric.name,
        role=role,
        kind=metric.kind,
        arms=summaries,
        comparisons=comparisons,
        cuped=cuped,
        warnings=warnings,
    )


def correct(results: list[MetricResult], cfg: Analysis) -> None:
    """Adjust the decision p-values of every comparison together (Holm or BH) and mark which
    are significant (frequentist engine)."""
    comps = [c for r in results for c in r.comparisons]
    # The decision uses the absolute test (Welch / z): exact where the relative is delta-method.
    decision = [c.absolute.p_value for c in comps]
    idx = [i for i, p in enumerate(decision) if p is not None]
    adjusted = stats.adjust([float(decision[i] or 0) for i in idx], cfg.correction, cfg.alpha)
    for i, p in zip(idx, adjusted, strict=True):
        comps[i].p_value_adjusted = _f(p)
        comps[i].significant = p < cfg.alpha if cfg.engine == "frequentist" else None


def exposures(design: Design, sizes: dict[int, int]) -> tuple[list[Exposure], Srm]:
    """Arm sizes against the weights, and the SRM check."""
    out = [
        Exposure(variant=i, variant_key=v.key, n=sizes.get(i, 0), expected_share=v.weight)
        for i, v in enumerate(design.variants)
    ]
    p = stats.srm_p_value([e.n for e in out], [v.weight for v in design.variants])
    return out, Srm(p_value=p, flagged=p < stats.SRM_THRESHOLD)
