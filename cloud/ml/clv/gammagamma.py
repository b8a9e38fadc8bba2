"""Gamma-Gamma spend model (Fader, Hardie and Lee 2005, "RFM and CLV"), fitted by max. likelihood.

Fitted on customers with at least one repeat purchase: `x` repeat purchases and `zbar` their mean
value. Gives the expected average transaction value E[M | x, zbar] of each customer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from cloud.ml.clv.bgnbd import minimize_log_params
from cloud.ml.errors import FitError

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters (p, q, gamma)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float
    n_customers: int

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON storage."""
        return {k: float(v) for k, v in asdict(self).items()}

    @property
    def population_mean(self) -> float:
        """E[M] of a customer with no repeat purchases yet: p * gamma / (q - 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("nan")


def _repeaters(x: Array, zbar: Array) -> tuple[Array, Array]:
    xs = np.asarray(x, dtype=np.float64)
    zs = np.asarray(zbar, dtype=np.float64)
    if xs.shape != zs.shape or xs.ndim != 1:
        raise FitError("x and zbar must be one-dimensional arrays of equal length")
    keep = (xs > 0) & (zs > 0)
    if int(keep.sum()) < 10:
        raise FitError("Gamma-Gamma needs at least 10 customers with repeat purchases")
    return xs[keep], zs[keep]


def log_likelihood_terms(params: Array, x: Array, zbar: Array) -> Array:
    """Per-customer log-likelihood of the mean spend `zbar` over `x` repeat purchases."""
    p, q, g = params
    result: Array = (
        special.gammaln(p * x + q)
        - special.gammaln(p * x)
        - special.gammaln(q)
        + q * np.log(g)
        + (p * x - 1) * np.log(zbar)
        + p * x * np.log(x)
        - (p * x + q) * np.log(g + x * zbar)
    )
    return result


def fit(
    x: Array, zbar: Array, *, start: tuple[float, float, float] = (1, 1, 1)
) -> GammaGammaParams:
    """Maximum-likelihood fit on the customers with x > 0 and zbar > 0."""
    xs, zs = _repeaters(x, zbar)
    scale = float(np.median(zs))

    def neg_ll(log_params: Array) -> float:
        p, q, g = np.exp(log_params)
        ll = log_likelihood_terms(np.array([p, q, g * scale]), xs, zs)
        return float(-ll.sum() / xs.size)

    x0 = np.log(np.array([start[0], start[1], start[2] / scale], dtype=np.float64))
    res = minimize_log_params(neg_ll, x0, "Gamma-Gamma")
    p, q, g = np.exp(res.x)
    return GammaGammaParams(
        p=float(p),
        q=float(q),
        gamma=float(g * scale),
        log_likelihood=float(-res.fun * xs.size),
        n_customers=int(xs.size),
    )


def expected_spend(params: GammaGammaParams, x: Array, zbar: Array) -> Array:
    """E[M | x, zbar]; customers without repeat purchases get the population mean."""
    xs = np.asarray(x, dtype=np.float64)
    zs = np.asarray(zbar, dtype=np.float64)
    p, q, g = params.p, params.q, params.gamma
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = (g + xs * zs) * p / (p * xs + q - 1)
    result: Array = np.where((xs > 0) & (zs > 0), cond, params.population_mean)
    return result
