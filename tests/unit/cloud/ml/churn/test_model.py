"""Progressive metrics and ADWIN drift detection of the churn model."""

from __future__ import annotations

import random

import pytest

from cloud.ml.churn.model import ChurnModel


def _stream(model: ChurnModel, n: int, flip: bool, rng: random.Random) -> None:
    for _ in range(n):
        v = rng.random()
        y = (v > 0.5) != flip
        x = {"v": v}
        model.learn(x, y, model.predict_proba(x))


def test_metrics_are_undefined_before_learning_and_track_quality_after() -> None:
    model = ChurnModel(learning_rate=0.1)
    assert model.metrics()["roc_auc"] is None
    _stream(model, 3000, False, random.Random(1))
    m = model.metrics()
    assert m["samples_seen"] == 3000
    assert m["roc_auc"] is not None and m["roc_auc"] > 0.9
    assert m["log_loss"] is not None and m["log_loss"] < 0.5


def test_concept_drift_is_detected_and_can_reset_the_model() -> None:
    rng = random.Random(2)
    model = ChurnModel(learning_rate=0.1, reset_on_drift=True)
    _stream(model, 3000, False, rng)
    assert model.drift_events == []
    _stream(model, 3000, True, rng)
    assert model.drift_events, "the label flip must be detected"
    assert model.resets >= 1 and model.drift_events[0].reset
    assert model.drift_events[0].sample > 3000


def test_drift_is_only_reported_when_reset_is_off() -> None:
    rng = random.Random(3)
    model = ChurnModel(learning_rate=0.1, reset_on_drift=False)
    _stream(model, 3000, False, rng)
    _stream(model, 3000, True, rng)
    assert model.drift_events and model.resets == 0
    assert not any(e.reset for e in model.drift_events)


def test_warm_metrics_leave_out_predictions_of_an_untrained_model() -> None:
    model = ChurnModel()
    model.learn({"v": 1.0}, True, 0.5, seen=0)
    model.learn({"v": 0.0}, False, 0.5, seen=10)
    assert model.metrics()["warm_samples"] == 0 and model.metrics()["warm_roc_auc"] is None
    model.learn({"v": 1.0}, True, 0.9, seen=5000)
    model.learn({"v": 0.0}, False, 0.1, seen=5001)
    m = model.metrics()
    assert m["warm_samples"] == 2 and m["samples_seen"] == 4
    assert m["warm_roc_auc"] == 1.0


def test_binned_auc_matches_the_exact_auc() -> None:
    import numpy as np

    from cloud.ml.churn.model import BinnedROCAUC
    from cloud.ml.evaluation import roc_auc

    rng = np.random.default_rng(5)
    y = rng.random(5000) < 0.3
    p = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    auc = BinnedROCAUC()
    for yi, pi in zip(y, p, strict=True):
        auc.update(bool(yi), float(pi))
    assert auc.get() == pytest.approx(roc_auc(y, p), abs=2e-3)
    assert BinnedROCAUC().get() != BinnedROCAUC().get()  # NaN without both classes
