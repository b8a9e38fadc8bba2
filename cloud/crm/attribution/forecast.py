"""Revenue forecasting: a structural time-series model of daily revenue (statsmodels'
UnobservedComponents: local linear trend, weekly seasonality, yearly seasonality once two years
are known, holiday effects as a regressor) with prediction intervals, and a backtest.

statsmodels rather than hand-written smoothing: the state-space model gives exact likelihood
fitting, proper prediction intervals and regressors in one maintained implementation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Forecast:
    """Daily forecast from the day after the history, with an interval at `level`."""

    start: date
    mean: Array
    lower: Array
    upper: Array
    level: float
    model: str


def _holiday_flags(days: Sequence[date], holidays: set[date]) -> Array:
    return np.array([[1.0 if d in holidays else 0.0] for d in days])


def forecast(
    history: Sequence[float],
    first_day: date,
    horizon_days: int,
    *,
    holidays: set[date] | None = None,
    level: float = 0.9,
    trend: str = "local level",
) -> Forecast:
    """Forecast `horizon_days` of daily revenue after `history` (which starts on `first_day`).

    Needs four weeks of history; a yearly cycle is modelled from two years on. Revenue cannot be
    negative, so the forecast and its interval are floored at 0."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    y = np.asarray(history, dtype=np.float64)
    if y.size < 28:
        raise ValueError("at least 28 days of history are needed to forecast")
    if not np.isfinite(y).all():
        raise ValueError("the history holds a missing or infinite value")
    seasonal: list[dict[str, float]] = [{"period": 7, "harmonics": 3}]
    name = f"{trend} + weekly"
    if y.size >= 730:
        seasonal.append({"period": 365.25, "harmonics": 4})
        name += " + yearly"
    past_days = [first_day + timedelta(days=i) for i in range(y.size)]
    future_days = [past_days[-1] + timedelta(days=i + 1) for i in range(horizon_days)]
    marked = holidays or set()
    exog = _holiday_flags(past_days, marked) if any(d in marked for d in past_days) else None
    if exog is not None:
        name += " + holidays"
    scale = float(np.std(y)) or 1.0  # fit on a unit scale: the optimiser behaves better
    model = UnobservedComponents(y / scale, level=trend, freq_seasonal=seasonal, exog=exog)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; the fit is checked below
        fitted = model.fit(disp=False, maxiter=200)
    future_exog = _holiday_flags(future_days, marked) if exog is not None else None
    pred = fitted.get_forecast(steps=horizon_days, exog=future_exog)
    mean = np.asarray(pred.predicted_mean, dtype=np.float64) * scale
    interval = np.asarray(pred.conf_int(alpha=1 - level), dtype=np.float64) * scale
    if not (np.isfinite(mean).all() and np.isfinite(interval).all()):
        raise ValueError("the model did not converge on this history")
    return Forecast(
        start=future_days[0],
        mean=np.maximum(mean, 0.0),
        lower=np.maximum(interval[:, 0], 0.0),
        upper=np.maximum(interval[:, 1], 0.0),
        level=level,
        model=name,
    )


def mape(actual: Sequence[float], predicted: Sequence[float]) -> float:
    """Mean absolute percentage error over the periods with non-zero actuals."""
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    keep = a != 0
    return float(np.mean(np.abs((a[keep] - p[keep]) / a[keep])))


def backtest(
    history: Sequence[float],
    first_day: date,
    hold_back_days: int,
    *,
    period_days: int = 30,
    trend: str = "local level",
) -> dict[str, float]:
    """Fit on all but the last `hold_back_days`, forecast them, and compare per `period_days`
    block (e.g. months): the model's MAPE against a seasonal-naive baseline (each held-back day
    as the same weekday of the last observed week)."""
    y = np.asarray(history, dtype=np.float64)
    train, test = y[:-hold_back_days], y[-hold_back_days:]
    fc = forecast(train.tolist(), first_day, hold_back_days, trend=trend)
    naive = np.array([train[-7 + (i % 7)] for i in range(hold_back_days)])
    blocks = range(0, hold_back_days - period_days + 1, period_days)
    actual = [test[i : i + period_days].sum() for i in blocks]
    model = [fc.mean[i : i + period_days].sum() for i in blocks]
    baseline = [naive[i : i + period_days].sum() for i in blocks]
    covered = float(np.mean((test >= fc.lower) & (test <= fc.upper)))
    return {
        "mape": mape(actual, model),
        "mape_seasonal_naive": mape(actual, baseline),
        "interval_coverage": covered,
        "periods": float(len(actual)),
    }
