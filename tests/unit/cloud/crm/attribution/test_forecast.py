"""The revenue forecast on series whose shape is known, and the backtest's arithmetic."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from cloud.crm.attribution.forecast import backtest, forecast, mape

D0 = date(2026, 1, 5)  # a Monday


def _weekly(days: int, noise: float = 2.0, seed: int = 3) -> list[float]:
    rng = np.random.default_rng(seed)
    pattern = np.array([100, 90, 95, 110, 160, 240, 200.0])  # weekend peak
    return (pattern[np.arange(days) % 7] + rng.normal(0, noise, days)).tolist()


def test_the_weekly_pattern_is_carried_forward() -> None:
    fc = forecast(_weekly(140), D0, 14)
    assert fc.start == D0 + timedelta(days=140)
    expected = np.array([100, 90, 95, 110, 160, 240, 200.0] * 2)
    assert mape(expected, fc.mean) < 0.05
    assert (fc.lower <= fc.mean).all() and (fc.mean <= fc.upper).all()
    assert "weekly" in fc.model and "yearly" not in fc.model


def test_holidays_are_learnt_as_an_effect() -> None:
    y = _weekly(210)
    holidays = {D0 + timedelta(days=d) for d in (30, 65, 100, 135, 170, 215)}
    for d in holidays:
        if (d - D0).days < 210:
            y[(d - D0).days] += 300.0
    fc = forecast(y, D0, 14, holidays=holidays)
    bump = fc.mean[215 - 210] - np.array([100, 90, 95, 110, 160, 240, 200.0])[215 % 7]
    assert "holidays" in fc.model and bump == pytest.approx(300.0, rel=0.15)


def test_revenue_is_never_forecast_below_zero() -> None:
    falling = [max(0.0, 500 - 9 * i) for i in range(60)]
    fc = forecast(falling, D0, 30, trend="local linear trend")
    assert (fc.mean >= 0).all() and (fc.lower >= 0).all()


@pytest.mark.parametrize(
    ("history", "words"),
    [([1.0] * 10, "at least 28 days"), ([1.0] * 27 + [float("nan")] * 3, "missing or infinite")],
)
def test_unusable_history_is_refused(history: list[float], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        forecast(history, D0, 7)


def test_backtest_scores_model_and_baseline_by_period() -> None:
    result = backtest(_weekly(180), D0, 60, period_days=30)
    assert result["periods"] == 2
    assert result["mape"] < 0.05 and result["mape_seasonal_naive"] < 0.05
    assert 0.0 <= result["interval_coverage"] <= 1.0
    assert mape([100, 0, 50], [110, 5, 40]) == pytest.approx(0.15)  # zero actuals skipped
