"""Predictive-analytics throughput on one core: churn events/s, scoring, BG/NBD fit time.

1. churn: CDNOW_master.txt (69,659 purchases, 23,570 customers) through the in-memory churn
   engine: feature update + predict_proba_one on every event + snapshots + learn_one on every
   resolved label. Baseline: the bare river pipeline doing one predict_proba_one + learn_one per
   recorded sample on the same feature dicts (the cost of river alone).
2. scoring: all 23,570 customers scored (features, churn probability, BG/NBD + Gamma-Gamma CLV,
   health, next best action). Baseline: bare predict_proba_one over the same feature dicts.
3. BG/NBD fit on all 23,570 customers (39-week calibration, as in the literature) vs the fit
   on the 2,357-customer sample.

    python bench/bench_ml.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.ml.churn.engine import ChurnConfig, ChurnEngine, InMemoryCustomerStore  # noqa: E402
from cloud.ml.churn.model import ChurnModel, build_estimator  # noqa: E402
from cloud.ml.churn.store import LoadedModel  # noqa: E402
from cloud.ml.clv import bgnbd  # noqa: E402
from cloud.ml.clv.summary import fit_summary, summarise  # noqa: E402
from cloud.ml.evaluation import load_master  # noqa: E402
from cloud.ml.events import Purchase  # noqa: E402
from cloud.ml.scoring import ScoringContext, score_states  # noqa: E402

END = datetime(1998, 7, 1, tzinfo=UTC)


def churn_run(events: list[Purchase]) -> tuple[float, ChurnEngine, list[Any]]:
    """Seconds for the full engine over all events; returns the engine and recorded samples."""
    samples: list[Any] = []
    model = ChurnModel()
    learn = model.learn

    def recording(x: dict[str, float], y: bool, p: float, seen: int | None = None) -> Any:
        samples.append((x, y))
        return learn(x, y, p, seen)

    model.learn = recording  # type: ignore[method-assign]
    engine = ChurnEngine(model, InMemoryCustomerStore(), ChurnConfig())
    t0 = time.perf_counter()
    for ev in events:
        engine.apply(ev)
    engine.advance(END.timestamp())
    return time.perf_counter() - t0, engine, samples


def baseline_run(samples: list[Any]) -> float:
    """Seconds for bare river predict_proba_one + learn_one over the recorded samples."""
    est = build_estimator(0.005)
    t0 = time.perf_counter()
    for x, y in samples:
        est.predict_proba_one(x)
        est.learn_one(x, y)
    return time.perf_counter() - t0


def main() -> None:
    """Run the three benchmarks and print figures and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="Runs of each measurement (median).")
    ap.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("MALLPULSE_SHARED", REPO.parent / "shared")),
        help="Shared assets folder.",
    )
    args = ap.parse_args()
    rows = load_master(args.shared / "data/cdnow/CDNOW_master.txt")
    events = [
        Purchase(
            f"c{r.customer}",
            datetime(r.day.year, r.day.month, r.day.day, 12, tzinfo=UTC),
            float(r.value),
            "cdnow",
        )
        for r in rows
    ]
    print(f"churn: {len(events)} purchases, {args.repeat} runs", flush=True)
    runs = [churn_run(events) for _ in range(args.repeat)]
    secs = statistics.median(r[0] for r in runs)
    engine, samples = runs[0][1], runs[0][2]
    base = statistics.median(baseline_run(samples) for _ in range(args.repeat))
    print(
        f"  engine: {len(events) / secs:,.0f} events/s ({secs:.2f}s, {len(samples)} labels learnt,"
        f" {len(events) + len(samples):,} predictions+)"
    )
    print(
        f"  bare river predict+learn per label: {len(samples) / base:,.0f} labels/s ({base:.2f}s)"
    )
    print(f"  ratio engine time / bare river time: {secs / base:.2f}")
    print(f"  progressive metrics: {engine.model.metrics()}")

    store = engine.store
    assert isinstance(store, InMemoryCustomerStore)
    states = list(store.states.values())
    as_of = END.timestamp()
    summary = summarise(states, as_of)
    fit = fit_summary("all", summary)
    ctx = ScoringContext(
        LoadedModel(engine.model, 1), {"all": fit.with_reference(100.0)}, ChurnConfig(), 52.0, as_of
    )
    score_t = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        scored = score_states(states, ctx)
        score_t.append(time.perf_counter() - t0)
    from cloud.ml.churn.features import features_at

    feats = [features_at(s, as_of) for s in states]
    bare_t = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for x in feats:
            engine.model.predict_proba(x)
        bare_t.append(time.perf_counter() - t0)
    st, bt = statistics.median(score_t), statistics.median(bare_t)
    print(
        f"scoring: {len(scored)} customers in {st:.2f}s ({len(scored) / st:,.0f}/s); bare "
        f"predict_proba_one {bt:.2f}s; ratio {st / bt:.2f}"
    )

    cal_end = (datetime(1997, 1, 1, tzinfo=UTC) + timedelta(weeks=39)).timestamp()
    cal = _calibration_summary(events, cal_end)
    sample = np.loadtxt(
        args.shared / "data/cdnow/cdnow_customers_summary.csv", delimiter=",", skiprows=1
    )
    fit_full, fit_sample = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        full = bgnbd.fit(*cal)
        fit_full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bgnbd.fit(sample[:, 1], sample[:, 2], sample[:, 3])
        fit_sample.append(time.perf_counter() - t0)
    ff, fs = statistics.median(fit_full), statistics.median(fit_sample)
    print(
        f"BG/NBD fit, all {len(cal[0])} customers (39-week calibration): {ff:.3f}s "
        f"(r={full.r:.3f} alpha={full.alpha:.3f} a={full.a:.3f} b={full.b:.3f}); "
        f"2,357-customer sample {fs:.3f}s; ratio {ff / fs:.1f} for {len(cal[0]) / 2357:.1f}x data"
    )


def _calibration_summary(events: list[Purchase], cal_end: float) -> tuple[np.ndarray, ...]:
    """x, t_x, T (weeks) of every customer from purchases before cal_end (days counted once)."""
    firsts: dict[str, float] = {}
    days: dict[str, set[int]] = {}
    for ev in events:
        t = ev.occurred_at.timestamp()
        if t >= cal_end:
            continue
        d = int(t // 86400)
        firsts.setdefault(ev.customer_id, d * 86400.0)
        days.setdefault(ev.customer_id, set()).add(d)
    week = 7 * 86400.0
    ids = sorted(firsts)
    x = np.array([len(days[c]) - 1 for c in ids], dtype=float)
    t_x = np.array([(max(days[c]) * 86400.0 - firsts[c]) / week for c in ids])
    big_t = np.array([(cal_end - firsts[c]) / week for c in ids])
    return x, t_x, big_t


if __name__ == "__main__":
    main()
