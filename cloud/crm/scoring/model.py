"""The predictive score: an online river model of P(convert within D days), calibrated online.

Same family and learning discipline as the churn engine (cloud/ml/churn): a StandardScaler |
LogisticRegression pipeline, labels that arrive only when the horizon has passed, and
progressive validation (each label is scored with the prediction made when its snapshot was
taken, before the label existed). Calibration is Platt scaling fitted online: every label adds
(logit of the raw prediction made at snapshot time, label) to a 64-bin histogram, and every
`refit_every` labels a two-parameter logistic fit (Newton's method over the bins) maps raw
logits to probabilities. Being fitted on out-of-sample predictions, it corrects the
over-confidence and the base-rate lag of the SGD model; being monotone, it keeps the ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from river import compose, linear_model, optim, preprocessing

from cloud.crm.scoring.scores import DAY, ProfileState

Z_BINS = 64
Z_RANGE = 8.0
REL_BINS = 10
#: Labels before the calibrator is used (before that the raw probability is served).
CALIBRATION_MIN = 200
#: Ridge toward the identity calibration and the largest slope a refit may take.
RIDGE = 1.0
MAX_SLOPE = 5.0


def build_estimator(learning_rate: float = 0.02) -> compose.Pipeline:
    """A fresh StandardScaler | LogisticRegression pipeline."""
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=1e-5),
    )


def features(state: ProfileState, t: float, fit: float, half_life_s: float) -> dict[str, float]:
    """The model's input for a profile at time t (decayed quantities taken forward to t)."""
    dt = max(0.0, t - state.at)
    raw = state.raw * 2.0 ** (-dt / half_life_s)
    ew7 = state.ew7 * 2.0 ** (-dt / (7 * DAY))
    ew30 = state.ew30 * 2.0 ** (-dt / (30 * DAY))
    since_last = (t - state.last_event) / DAY if state.last_event is not None else 365.0
    age = (t - state.first_seen) / DAY if state.first_seen is not None else 0.0
    conv = (t - state.converted_at) / DAY if state.converted_at is not None else 730.0
    return {
        "points": math.copysign(math.log1p(abs(raw)), raw),
        "ew7": math.log1p(ew7),
        "ew30": math.log1p(ew30),
        "recency_days": math.log1p(max(0.0, since_last)),
        "age_days": math.log1p(max(0.0, age)),
        "events": math.log1p(state.events),
        "since_conversion": math.log1p(max(0.0, conv)),
        "fit": fit / 100.0,
    }


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass
class PlattCalibrator:
    """Online Platt scaling over a histogram of (raw logit, label)."""

    refit_every: int = 100
    pos: list[float] = field(default_factory=lambda: [0.0] * Z_BINS)
    neg: list[float] = field(default_factory=lambda: [0.0] * Z_BINS)
    a: float = 1.0
    b: float = 0.0
    seen: int = 0

    @staticmethod
    def _bin(z: float) -> int:
        i = int((z + Z_RANGE) / (2 * Z_RANGE) * Z_BINS)
        return min(max(i, 0), Z_BINS - 1)

    @staticmethod
    def _centre(i: int) -> float:
        return -Z_RANGE + (i + 0.5) * 2 * Z_RANGE / Z_BINS

    def update(self, p_raw: float, y: bool) -> None:
        """Count one out-of-sample prediction with its label; refit now and then."""
        i = self._bin(_logit(p_raw))
        if y:
            self.pos[i] += 1
        else:
            self.neg[i] += 1
        self.seen += 1
        if self.seen % self.refit_every == 0:
            self.refit()

    def _loss(self, a: float, b: float) -> float:
        """Negative log-likelihood of the histogram under (a, b), plus the ridge toward (1, 0)."""
        total = RIDGE * ((a - 1.0) ** 2 + b**2) / 2
        for i in range(Z_BINS):
            if self.pos[i] or self.neg[i]:
                p = min(max(_sigmoid(a * self._centre(i) + b), 1e-12), 1 - 1e-12)
                total -= self.pos[i] * math.log(p) + self.neg[i] * math.log(1 - p)
        return total

    def refit(self) -> None:
        """Weighted logistic fit p = sigmoid(a * z + b) by Newton's method with a ridge toward
        the identity (a = 1, b = 0) and step halving, so a fit that would run off to infinity on
        nearly separable bins (all probabilities 0 or 1, every ranking tied) stays bounded."""
        a, b = self.a, self.b
        loss = self._loss(a, b)
        for _ in range(50):
            ga, gb = RIDGE * (a - 1.0), RIDGE * b
            haa = hbb = RIDGE
            hab = 0.0
            for i in range(Z_BINS):
                n = self.pos[i] + self.neg[i]
                if not n:
                    continue
                z = self._centre(i)
                p = _sigmoid(a * z + b)
                r = n * p - self.pos[i]
                w = n * p * (1 - p)
                ga, gb = ga + r * z, gb + r
                haa, hab, hbb = haa + w * z * z, hab + w * z, hbb + w
            det = haa * hbb - hab * hab
            if det <= 1e-12:
                break
            da = (hbb * ga - hab * gb) / det
            db = (haa * gb - hab * ga) / det
            step = 1.0
            while step > 1e-4:  # halve the step until the loss goes down
                na, nb = a - step * da, b - step * db
                new = self._loss(na, nb)
                if new <= loss:
                    break
                step /= 2
            else:
                break
            a, b, loss = na, nb, new
            if abs(step * da) + abs(step * db) < 1e-9:
                break
        if math.isfinite(a) and math.isfinite(b):
            self.a, self.b = min(max(a, 1e-3), MAX_SLOPE), b  # monotone: never invert ranking

    def calibrate(self, p_raw: float) -> float:
        """The calibrated probability (the raw one until CALIBRATION_MIN labels)."""
        if self.seen < CALIBRATION_MIN:
            return p_raw
        return _sigmoid(self.a * _logit(p_raw) + self.b)


@dataclass
class Binned:
    """Streaming ROC AUC and reliability from score histograms (O(1) per update)."""

    bins: int = 1000
    pos: list[int] = field(default_factory=list)
    neg: list[int] = field(default_factory=list)
    rel_n: list[int] = field(default_factory=lambda: [0] * REL_BINS)
    rel_p: list[float] = field(default_factory=lambda: [0.0] * REL_BINS)
    rel_y: list[int] = field(default_factory=lambda: [0] * REL_BINS)
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0
    n: int = 0

    def update(self, y: bool, p: float) -> None:
        """Count one labelled prediction."""
        if not self.pos:
            self.pos, self.neg = [0] * self.bins, [0] * self.bins
        i = min(int(p * self.bins), self.bins - 1)
        (self.pos if y else self.neg)[i] += 1
        j = min(int(p * REL_BINS), REL_BINS - 1)
        self.rel_n[j] += 1
        self.rel_p[j] += p
        self.rel_y[j] += int(y)
        q = min(max(p, 1e-6), 1 - 1e-6)
        self.log_loss_sum -= math.log(q if y else 1 - q)
        self.brier_sum += (float(y) - p) ** 2
        self.n += 1

    def auc(self) -> float | None:
        """P(score of a positive > score of a negative), ties counted half; None if undefined."""
        n_pos, n_neg = sum(self.pos), sum(self.neg)
        if not n_pos or not n_neg:
            return None
        below = wins = 0.0
        for pos, neg in zip(self.pos, self.neg, strict=True):
            wins += pos * (below + neg / 2)
            below += neg
        return wins / (n_pos * n_neg)

    def reliability(self) -> list[dict[str, float | int]]:
        """Per probability decile: count, mean prediction, observed rate."""
        return [
            {"bin": j, "n": n, "mean_p": round(sp / n, 4), "rate": round(sy / n, 4)}
            for j, (n, sp, sy) in enumerate(zip(self.rel_n, self.rel_p, self.rel_y, strict=True))
            if n
        ]

    def ece(self) -> float | None:
        """Expected calibration error over the deciles."""
        if not self.n:
            return None
        return sum(abs(sp - sy) for sp, sy in zip(self.rel_p, self.rel_y, strict=True)) / self.n

    def summary(self) -> dict[str, Any]:
        """JSON-friendly metrics (None where undefined)."""

        def r(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else round(v, 6)

        return {
            "n": self.n,
            "roc_auc": r(self.auc()),
            "log_loss": r(self.log_loss_sum / self.n) if self.n else None,
            "brier": r(self.brier_sum / self.n) if self.n else None,
            "ece": r(self.ece()),
            "reliability": self.reliability(),
        }


@dataclass
class ConversionModel:
    """River estimator, Platt calibrator and progressive metrics; pickled as one object."""

    learning_rate: float = 0.02
    estimator: Any = None
    calibrator: PlattCalibrator = field(default_factory=PlattCalibrator)
    raw_metrics: Binned = field(default_factory=Binned)
    cal_metrics: Binned = field(default_factory=Binned)
    behaviour_metrics: Binned = field(default_factory=Binned)
    combined_metrics: Binned = field(default_factory=Binned)
    samples_seen: int = 0
    positives: int = 0
    clock: float = 0.0

    def __post_init__(self) -> None:
        if self.estimator is None:
            self.estimator = build_estimator(self.learning_rate)

    def predict_raw(self, x: dict[str, float]) -> float:
        """The uncalibrated P(convert | x); 0.5 before the first label."""
        return float(self.estimator.predict_proba_one(x).get(True, 0.0))

    def predict(self, x: dict[str, float]) -> tuple[float, float]:
        """(raw, calibrated) P(convert within the horizon | x)."""
        raw = self.predict_raw(x)
        return raw, self.calibrator.calibrate(raw)

    def learn(
        self,
        x: dict[str, float],
        y: bool,
        p_raw: float,
        p_cal: float,
        scores: tuple[float, float] | None = None,
    ) -> None:
        """Score the snapshot-time predictions (and the snapshot-time rules-only and combined
        scores, 0-100, for comparison), then learn: calibrator first, then the model."""
        self.raw_metrics.update(y, p_raw)
        self.cal_metrics.update(y, p_cal)
        if scores is not None:
            self.behaviour_metrics.update(y, min(1.0, max(0.0, scores[0] / 100.0)))
            self.combined_metrics.update(y, min(1.0, max(0.0, scores[1] / 100.0)))
        self.calibrator.update(p_raw, y)
        self.estimator.learn_one(x, y)
        self.samples_seen += 1
        self.positives += int(y)

    def metrics(self) -> dict[str, Any]:
        """Progressive-validation metrics, raw and calibrated."""
        return {
            "samples_seen": self.samples_seen,
            "positives": self.positives,
            "raw": self.raw_metrics.summary(),
            "calibrated": self.cal_metrics.summary(),
            "rules_only": self.behaviour_metrics.summary(),
            "combined": self.combined_metrics.summary(),
            "platt": {"a": round(self.calibrator.a, 6), "b": round(self.calibrator.b, 6)},
        }
