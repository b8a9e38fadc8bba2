"""A/A simulation: 1,000 experiments with no effect keep the false-positive rate at alpha.

Data are drawn vectorised with numpy and reduced to the sufficient statistics the SQL side
produces; the tests run on those, as the service does. The band is the 99.9% binomial interval
of 1,000 draws at alpha, so a correct test fails here about once in a thousand seeds (the seed is
fixed). The peeking control shows the check can fail: the fixed-horizon test, looked at ten
times, leaves the band; the sequential test, looked at as often, stays under alpha.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from cloud.crm.experiments import stats
from cloud.crm.experiments.stats import ArmStats

EXPERIMENTS, N, LOOKS, ALPHA = 1000, 2000, 10, 0.05
LOW, HIGH = sps.binom.interval(0.999, EXPERIMENTS, ALPHA)


def _cumulative(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative sums and sums of squares at each look: shape (experiments, looks)."""
    if kind == "conversion":
        x = (rng.random((EXPERIMENTS, N)) < 0.1).astype(float)
    else:
        x = rng.lognormal(3, 1, (EXPERIMENTS, N))  # skewed, like revenue
    step = N // LOOKS
    s = np.cumsum(x, axis=1)[:, step - 1 :: step]
    s2 = np.cumsum(x * x, axis=1)[:, step - 1 :: step]
    return s, s2


def _arms(rng: np.random.Generator, kind: str) -> list[list[tuple[ArmStats, ArmStats]]]:
    (sa, s2a), (sb, s2b) = _cumulative(rng, kind), _cumulative(rng, kind)
    n = [(k + 1) * (N // LOOKS) for k in range(LOOKS)]
    return [
        [(ArmStats(n[k], sa[e, k], s2a[e, k]), ArmStats(n[k], sb[e, k], s2b[e, k]))
         for k in range(LOOKS)]
        for e in range(EXPERIMENTS)
    ]  # fmt: skip


def _fixed(a: ArmStats, b: ArmStats, kind: str) -> float:
    if kind == "conversion":
        return stats.z_test_proportions(a, b, "absolute", ALPHA).p_value
    return stats.t_test(stats.mean_moments(a), stats.mean_moments(b), "absolute", ALPHA).p_value


def _sequential(a: ArmStats, b: ArmStats) -> float:
    ma, mb = stats.mean_moments(a), stats.mean_moments(b)
    return stats.sequential_test(ma, mb, "absolute", ALPHA, 2 * N).p_value


def test_fixed_horizon_false_positive_rate_is_alpha() -> None:
    rng = np.random.default_rng(20261205)
    for kind in ("conversion", "revenue"):
        runs = _arms(rng, kind)
        hits = sum(_fixed(*looks[-1], kind) < ALPHA for looks in runs)
        assert LOW <= hits <= HIGH, (kind, hits, LOW, HIGH)


def test_sequential_stays_under_alpha_when_peeking_and_fixed_does_not() -> None:
    rng = np.random.default_rng(4242)
    runs = _arms(rng, "revenue")
    peeking_fixed = sum(any(_fixed(a, b, "revenue") < ALPHA for a, b in looks) for looks in runs)
    peeking_seq = sum(any(_sequential(a, b) < ALPHA for a, b in looks) for looks in runs)
    assert peeking_fixed > HIGH  # ten looks at a fixed-horizon test inflate the error
    assert peeking_seq <= HIGH  # always valid: at most alpha whatever the looks
