"""The online churn classifier (river): learning, progressive validation and drift detection.

The estimator is a small river pipeline (StandardScaler | LogisticRegression) so one learn or
predict costs tens of microseconds. Every labelled sample first updates the progressive-validation
metrics with the probability predicted *when the snapshot was taken* (before its label existed),
then feeds the absolute error to ADWIN; a detected drift is recorded and, when configured, resets
the estimator (the metrics keep running so the reset shows in them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from river import compose, linear_model, optim, preprocessing, utils
from river import drift as _drift
from river import metrics as _metrics

# river's metric and drift constructors are untyped; reach them through Any.
metrics: Any = _metrics
drift: Any = _drift

ROLLING_WINDOW = 5000
#: Predictions made before the model had learnt this many labels are left out of the "warm"
#: metrics (with a 26-week label delay, a new model predicts 0.5 for half a year).
WARMUP_SAMPLES = 1000
MAX_DRIFT_EVENTS = 50


def build_estimator(learning_rate: float = 0.005) -> compose.Pipeline:
    """A fresh StandardScaler | LogisticRegression pipeline."""
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=1e-5),
    )


class BinnedROCAUC:
    """Streaming ROC AUC from score histograms: O(1) per update, exact up to 1/bins in score.

    river's ROCAUC updates one confusion matrix per threshold (100 here) on every sample, which
    cost more than the model itself; counting scores in bins gives the same curve far cheaper.
    """

    def __init__(self, bins: int = 1000) -> None:
        self.bins = bins
        self.pos = [0] * bins
        self.neg = [0] * bins

    def update(self, y: bool, p: float) -> None:
        """Count one labelled score."""
        i = min(int(p * self.bins), self.bins - 1)
        if y:
            self.pos[i] += 1
        else:
            self.neg[i] += 1

    def get(self) -> float:
        """AUC = P(score of a positive > score of a negative), ties (same bin) counted half."""
        n_pos, n_neg = sum(self.pos), sum(self.neg)
        if not n_pos or not n_neg:
            return float("nan")
        below = 0.0
        wins = 0.0
        for pos, neg in zip(self.pos, self.neg, strict=True):
            wins += pos * (below + neg / 2)
            below += neg
        return wins / (n_pos * n_neg)


@dataclass
class DriftEvent:
    """A change in the model's error stream detected by ADWIN."""

    sample: int
    clock: float
    error_before: float
    reset: bool


@dataclass
class ChurnModel:
    """River estimator plus its metrics, drift detector and counters; pickled as one object."""

    reset_on_drift: bool = False
    adwin_delta: float = 0.002
    learning_rate: float = 0.005
    estimator: Any = None
    samples_seen: int = 0
    positives: int = 0
    resets: int = 0
    clock: float = 0.0
    roc_auc: BinnedROCAUC = field(default_factory=BinnedROCAUC)
    log_loss: Any = field(default_factory=metrics.LogLoss)
    rolling_roc_auc: Any = field(
        default_factory=lambda: metrics.RollingROCAUC(window_size=ROLLING_WINDOW)
    )
    rolling_log_loss: Any = field(
        default_factory=lambda: utils.Rolling(metrics.LogLoss, window_size=ROLLING_WINDOW)
    )
    warm_roc_auc: BinnedROCAUC = field(default_factory=BinnedROCAUC)
    warm_log_loss: Any = field(default_factory=metrics.LogLoss)
    warm_samples: int = 0
    detector: Any = None
    error_mean: Any = field(default_factory=lambda: utils.Rolling(metrics.MAE, window_size=1000))
    drift_events: list[DriftEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.estimator is None:
            self.estimator = build_estimator(self.learning_rate)
        if self.detector is None:
            self.detector = drift.ADWIN(delta=self.adwin_delta)

    def predict_proba(self, x: dict[str, float]) -> float:
        """P(churn | x); 0.5 before the first sample."""
        proba = self.estimator.predict_proba_one(x)
        return float(proba.get(True, 0.0))

    def learn(
        self, x: dict[str, float], y: bool, p_prior: float, seen: int | None = None
    ) -> DriftEvent | None:
        """Score the prior prediction, learn (x, y), feed ADWIN; returns a drift event if any."""
        p = min(max(p_prior, 1e-6), 1 - 1e-6)
        self.roc_auc.update(y, p)
        self.log_loss.update(y, p)
        self.rolling_roc_auc.update(y, {True: p, False: 1 - p})
        self.rolling_log_loss.update(y, p)
        if seen is None or seen >= WARMUP_SAMPLES:
            self.warm_roc_auc.update(y, p)
            self.warm_log_loss.update(y, p)
            self.warm_samples += 1
        self.error_mean.update(float(y), p)
        self.estimator.learn_one(x, y)
        self.samples_seen += 1
        self.positives += int(y)
        before = self.detector.estimation
        self.detector.update(abs(float(y) - p))
        # ADWIN flags any change of the mean error; only a worse error is drift worth acting on.
        if not self.detector.drift_detected or self.detector.estimation <= before:
            return None
        event = DriftEvent(self.samples_seen, self.clock, self.error_mean.get(), False)
        if self.reset_on_drift:
            self.estimator = build_estimator(self.learning_rate)
            self.resets += 1
            event.reset = True
        self.drift_events = [*self.drift_events, event][-MAX_DRIFT_EVENTS:]
        return event

    def reset(self) -> None:
        """Forget everything learnt (metrics continue, so the reset shows in them)."""
        self.estimator = build_estimator(self.learning_rate)
        self.detector = drift.ADWIN(delta=self.adwin_delta)
        self.resets += 1

    def metrics(self) -> dict[str, float | int | None]:
        """Current metric values, JSON-friendly (None where undefined yet)."""

        def num(value: float) -> float | None:
            return None if value is None or math.isnan(value) else round(float(value), 6)

        return {
            "samples_seen": self.samples_seen,
            "positives": self.positives,
            "roc_auc": num(self.roc_auc.get()) if self.samples_seen else None,
            "log_loss": num(self.log_loss.get()) if self.samples_seen else None,
            "rolling_roc_auc": num(self.rolling_roc_auc.get()) if self.samples_seen else None,
            "rolling_log_loss": num(self.rolling_log_loss.get()) if self.samples_seen else None,
            "warm_samples": self.warm_samples,
            "warm_roc_auc": num(self.warm_roc_auc.get()) if self.warm_samples else None,
            "warm_log_loss": num(self.warm_log_loss.get()) if self.warm_samples else None,
            "drift_events": len(self.drift_events),
            "resets": self.resets,
        }
