"""BG/NBD (Fader, Hardie and Lee 2005): purchase frequency and P(alive), fitted by max. likelihood.

Inputs per customer are the usual RFM summary in a chosen time unit (weeks in the literature):
`x` repeat purchases, `t_x` time of the last purchase and `T` age, both measured from the first
purchase. Parameters are optimised in log space (they must be positive) with L-BFGS-B.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from cloud.ml.errors import FitError

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters: Gamma(r, alpha) purchase rates, Beta(a, b) dropout."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON storage."""
        return {k: float(v) for k, v in asdict(self).items()}


def _arrays(x: Array, t_x: Array, big_t: Array) -> tuple[Array, Array, Array]:
    xs, tx, tt = (np.asarray(v, dtype=np.float64) for v in (x, t_x, big_t))
    if not (xs.shape == tx.shape == tt.shape) or xs.ndim != 1 or xs.size == 0:
        raise FitError("x, t_x and T must be non-empty one-dimensional arrays of equal length")
    if np.any(xs < 0) or np.any(tx < 0) or np.any(tt < tx) or not np.all(np.isfinite(tt)):
        raise FitError("need x >= 0 and 0 <= t_x <= T for every customer")
    return xs, tx, tt


def log_likelihood_terms(params: Array, x: Array, t_x: Array, big_t: Array) -> Array:
    """Per-customer log-likelihood for (r, alpha, a, b)."""
    r, alpha, a, b = params
    common = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.gammaln(a + b)
        + special.gammaln(b + x)
        - special.gammaln(b)
        - special.gammaln(a + b + x)
    )
    a1 = -(r + x) * np.log(alpha + big_t)
    with np.errstate(divide="ignore"):
        a2 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    result: Array = common + np.logaddexp(a1, a2)
    return result


def fit(
    x: Array, t_x: Array, big_t: Array, *, start: tuple[float, ...] = (1, 1, 1, 1)
) -> BgNbdParams:
    """Maximum-likelihood fit; raises FitError when the optimiser fails."""
    xs, tx, tt = _arrays(x, t_x, big_t)
    scale = max(float(tt.max()), 1e-9)

    def neg_ll(log_params: Array) -> float:
        p = np.exp(log_params)
        p_scaled = np.array([p[0], p[1] * scale, p[2], p[3]])
        ll = log_likelihood_terms(p_scaled, xs, tx, tt)
        return float(-ll.sum() / xs.size)

    # alpha is optimised relative to the time scale so the problem is well conditioned.
    x0 = np.log(np.array([start[0], start[1] / scale, start[2], start[3]], dtype=np.float64))
    res = minimize_log_params(neg_ll, x0, "BG/NBD")
    r, alpha_s, a, b = np.exp(res.x)
    return BgNbdParams(
        r=float(r),
        alpha=float(alpha_s * scale),
        a=float(a),
        b=float(b),
        log_likelihood=float(-res.fun * xs.size),
        n_customers=int(xs.size),
    )


def minimize_log_params(fun: Callable[[Array], float], x0: Array, what: str) -> Any:
    """L-BFGS-B over bounded log parameters.

    A line-search stop (status 2) is accepted: it means no further progress was possible, which
    on small data happens on a flat ridge towards a bound (e.g. a, b -> infinity at a fixed
    a / (a + b)); the point reached is still the best fit found.
    """
    bounds = [(-12.0, 12.0)] * len(x0)
    res = optimize.minimize(fun, x0, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
    if not np.isfinite(res.fun) or not (res.success or res.status == 2):
        raise FitError(f"{what} fit did not converge: {res.message}")
    return res


def probability_alive(p: BgNbdParams, x: Array, t_x: Array, big_t: Array) -> Array:
    """P(alive | x, t_x, T): the probability the customer has not dropped out by T."""
    xs, tx, tt = _arrays(x, t_x, big_t)
    log_ratio = (p.r + xs) * (np.log(p.alpha + tt) - np.log(p.alpha + tx))
    odds = np.where(
        xs > 0, np.exp(np.log(p.a) - np.log(np.maximum(p.b + xs - 1, 1e-300)) + log_ratio), 0.0
    )
    result: Array = 1.0 / (1.0 + odds)
    return result


def expected_purchases(p: BgNbdParams, t: float, x: Array, t_x: Array, big_t: Array) -> Array:
    """E[Y(t) | x, t_x, T]: expected purchases in the next `t` time units."""
    xs, tx, tt = _arrays(x, t_x, big_t)
    if t < 0:
        raise FitError("horizon t must be >= 0")
    if abs(p.a - 1.0) < 1e-9:
        raise FitError("expected purchases are undefined at a == 1; refit")
    hyp = special.hyp2f1(p.r + xs, p.b + xs, p.a + p.b + xs - 1, t / (p.alpha + tt + t))
    term = 1.0 - ((p.alpha + tt) / (p.alpha + tt + t)) ** (p.r + xs) * hyp
    result: Array = (p.a + p.b + xs - 1) / (p.a - 1) * term * probability_alive(p, xs, tx, tt)
    return result


def expected_purchases_new(p: BgNbdParams, t: float) -> float:
    """E[X(t)] for a new customer: expected purchases in a period of length t from acquisition."""
    if abs(p.a - 1.0) < 1e-9:
        raise FitError("expected purchases are undefined at a == 1; refit")
    z = t / (p.alpha + t)
    hyp = special.hyp2f1(p.r, p.b, p.a + p.b - 1, z)
    return float((p.a + p.b - 1) / (p.a - 1) * (1 - (p.alpha / (p.alpha + t)) ** p.r * hyp))
