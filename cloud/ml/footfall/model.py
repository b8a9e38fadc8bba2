"""Online footfall anomaly detection and short-horizon forecasting for one store (river).

The series is hourly people-in counts. An additive Holt-Winters model with daily seasonality
(24 hours) forecasts the next hour; river's PredictiveAnomalyDetection compares each observed hour
with that forecast and scores the squared error against a running threshold (mean + n_std
standard deviations of past squared errors). Hours missing between two observed hours count as
zero footfall (no windows means no one crossed a line or the store was closed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from river import anomaly as _anomaly
from river import time_series as _time_series

anomaly: Any = _anomaly
time_series: Any = _time_series

HOUR = 3600.0
#: Anomaly scores at or above this are flagged (river scores 1.0 above its threshold).
ANOMALY_THRESHOLD = 1.0
MAX_GAP_HOURS = 24 * 14


@dataclass(frozen=True)
class ScoredHour:
    """One learnt hour with what the model expected and its anomaly score."""

    bucket_start: float
    observed: float
    expected: float | None
    score: float
    is_anomaly: bool


def _forecaster(season: int) -> Any:
    return time_series.HoltWinters(alpha=0.3, beta=0.01, gamma=0.3, seasonality=season)


@dataclass
class FootfallModel:
    """Forecaster + anomaly detector of one store's hourly footfall."""

    season: int = 24
    n_std: float = 3.0
    forecaster: Any = None
    detector: Any = None
    last_bucket: float | None = None
    hours_seen: int = 0
    anomalies: int = 0
    abs_error_sum: float = 0.0
    scored: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.forecaster is None:
            self.forecaster = _forecaster(self.season)
            self.detector = anomaly.PredictiveAnomalyDetection(
                self.forecaster, horizon=1, n_std=self.n_std, warmup_period=2 * self.season
            )

    @property
    def ready(self) -> bool:
        """True once the seasonal model is initialised (one full season learnt)."""
        return self.hours_seen > self.season

    def learn(self, bucket_start: float, observed: float) -> list[ScoredHour]:
        """Learn an hour (and zero-filled hours missed since the last); returns their scores."""
        if self.last_bucket is not None and bucket_start <= self.last_bucket:
            return []
        out: list[ScoredHour] = []
        if self.last_bucket is not None:
            base = self.last_bucket
            gap = round((bucket_start - base) / HOUR) - 1
            for k in range(1, min(gap, MAX_GAP_HOURS) + 1):
                out.append(self._one(base + k * HOUR, 0.0))
        out.append(self._one(bucket_start, float(observed)))
        return out

    def _one(self, bucket_start: float, y: float) -> ScoredHour:
        expected: float | None = None
        score = 0.0
        if self.ready:
            expected = max(float(self.forecaster.forecast(1)[0]), 0.0)
            score = float(self.detector.score_one(None, y))
            self.abs_error_sum += abs(y - expected)
            self.scored += 1
        self.detector.learn_one(None, y)
        self.hours_seen += 1
        self.last_bucket = bucket_start
        # No flags until the error threshold has a season of history behind it.
        flagged = self.hours_seen > 3 * self.season and score >= ANOMALY_THRESHOLD
        self.anomalies += int(flagged)
        return ScoredHour(bucket_start, y, expected, score, flagged)

    def forecast(self, horizon: int) -> list[tuple[float, float]]:
        """(bucket_start, expected) of the next `horizon` hours; empty until the model is ready."""
        if not self.ready or self.last_bucket is None:
            return []
        values = self.forecaster.forecast(horizon)
        return [
            (self.last_bucket + (k + 1) * HOUR, max(float(v), 0.0)) for k, v in enumerate(values)
        ]

    def metrics(self) -> dict[str, float | int | None]:
        """Hours learnt, anomalies flagged and the mean absolute one-step error."""
        mae = self.abs_error_sum / self.scored if self.scored else None
        return {
            "hours_seen": self.hours_seen,
            "anomalies": self.anomalies,
            "mae_one_step": None if mae is None or math.isnan(mae) else round(mae, 4),
        }
