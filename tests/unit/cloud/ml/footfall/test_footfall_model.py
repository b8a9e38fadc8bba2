"""Online footfall anomaly detection and forecasting on a synthetic store with a known spike."""

from __future__ import annotations

import math
import pickle
import random

from cloud.ml.footfall.model import HOUR, FootfallModel

T0 = 1_700_000_000.0 - (1_700_000_000.0 % HOUR)


def _people(hour_index: int, rng: random.Random) -> float:
    h = hour_index % 24
    base = 100 * math.sin(math.pi * (h - 8) / 12) if 8 <= h <= 20 else 0.0
    return max(rng.gauss(base, 3 + 0.05 * base), 0.0)


def _series(days: int, spike_at: int | None = None, seed: int = 0) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    out = []
    for i in range(days * 24):
        y = _people(i, rng)
        if i == spike_at:
            y = y * 3 + 150
        out.append((T0 + i * HOUR, y))
    return out


def test_detects_the_spike_and_little_else() -> None:
    spike = 20 * 24 + 13
    model = FootfallModel()
    flagged = [
        h.bucket_start for t, y in _series(28, spike) for h in model.learn(t, y) if h.is_anomaly
    ]
    assert T0 + spike * HOUR in flagged
    assert len(flagged) <= 6
    assert model.metrics()["anomalies"] == len(flagged)


def test_forecast_follows_the_daily_pattern() -> None:
    model = FootfallModel()
    assert model.forecast(24) == []  # not ready before a season is learnt
    for t, y in _series(14):
        model.learn(t, y)
    fc = model.forecast(24)
    assert len(fc) == 24 and fc[0][0] == T0 + 14 * 24 * HOUR
    by_hour = {int((t - T0) // HOUR) % 24: v for t, v in fc}
    assert by_hour[14] > 80 and by_hour[3] < 15
    mae = model.metrics()["mae_one_step"]
    assert mae is not None and mae < 15


def test_missing_hours_count_as_zero_and_old_hours_are_ignored() -> None:
    model = FootfallModel()
    model.learn(T0, 5.0)
    scored = model.learn(T0 + 4 * HOUR, 7.0)
    assert [h.observed for h in scored] == [0.0, 0.0, 0.0, 7.0]
    assert [h.bucket_start for h in scored] == [T0 + k * HOUR for k in (1, 2, 3, 4)]
    assert model.learn(T0 + 2 * HOUR, 9.0) == []
    assert model.hours_seen == 5


def test_model_survives_pickling() -> None:
    model = FootfallModel()
    for t, y in _series(3):
        model.learn(t, y)
    again = pickle.loads(pickle.dumps(model))
    assert again.forecast(3) == model.forecast(3)
