"""Evaluate lead scoring (see docs/scoring.md): rules-only vs predictive vs combined.

1. A generated population with a documented conversion mechanism (below), replayed through the
   in-memory ScoringEngine: progressive ROC AUC (each snapshot scored with what the engine said
   at that moment, before its label existed) per 30-day period, and the calibration (ECE,
   reliability deciles) of the raw and the Platt-calibrated predictions.
2. CDNOW (../shared/data/cdnow): purchases replayed as conversion events; at the 39-week cut-off
   (1997-09-30) each customer's P(purchase within 90 days) from the engine vs BG/NBD's P(alive)
   and expected purchases fitted on the same calibration period.

Conversion mechanism of the generated population. Each lead i has a latent intent
u_i ~ Beta(1.2, 4) and a company size s_i in {1, 2, 3} (P = .5, .3, .2; an attribute, scored by a
fit rule). Leads arrive uniformly over the first 150 days of a 240-day run. Each day a lead emits
Poisson(0.05 + 0.8 u) events: `page_view` (p .6), `pricing_view` (p .1 + .3u, renormalised),
`email_click` (p .2) and `demo_request` (p .02 + .1u). Its daily conversion probability is
    q = 0.0015 + 0.03 u * (1 + [pricing_view in the last 7 days]) * (0.6 + 0.3 s)
and it leaves the population once converted (a `purchase` event). Rules see the events but not
u, recency interactions or s beyond the fit rule, so a learnt model has something to add.

    python bench/eval_scoring.py [--leads 20000] [--plot docs/images/scoring-reliability.png]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.crm.scoring.engine import ScoringEngine, Snapshot  # noqa: E402
from cloud.crm.scoring.model import Binned, ConversionModel  # noqa: E402
from cloud.crm.scoring.rules import ProgrammeConfig  # noqa: E402
from cloud.crm.scoring.scores import fit_score  # noqa: E402
from cloud.ml.clv import bgnbd  # noqa: E402
from cloud.ml.evaluation import load_master, roc_auc  # noqa: E402

DAY = 86400.0
LEADS = ProgrammeConfig.model_validate(
    {
        "behaviour_rules": [
            {"key": "view", "event": "page_view", "points": 2, "daily_cap": 6},
            {"key": "pricing", "event": "pricing_view", "points": 10, "daily_cap": 20},
            {"key": "click", "event": "email_click", "points": 3, "daily_cap": 6},
            {"key": "demo", "event": "demo_request", "points": 30, "repeat": "once"},
        ],
        "half_life_days": 14,
        "behaviour_max_points": 80,
        "fit": {
            "completeness_fields": [],
            "rules": [
                {
                    "key": "mid",
                    "filter": {"property": "size", "op": "eq", "value": 2},
                    "points": 50,
                },
                {
                    "key": "big",
                    "filter": {"property": "size", "op": "eq", "value": 3},
                    "points": 100,
                },
            ],
        },
        "predictive": {"horizon_days": 30, "snapshot_every_days": 7, "max_idle_snapshots": 4},
        "weights": {"behaviour": 0.4, "fit": 0.2, "predictive": 0.4},
    }
)


def generate(n: int, seed: int) -> tuple[list[tuple[float, int, str]], dict[int, int]]:
    """The event stream (time, lead, event) in time order and each lead's company size."""
    rng = np.random.default_rng(seed)
    u = rng.beta(1.2, 4.0, n)
    size = rng.choice([1, 2, 3], n, p=[0.5, 0.3, 0.2])
    start = rng.uniform(0, 150, n)
    out: list[tuple[float, int, str]] = []
    for i in range(n):
        last_pricing = -1e9
        d = int(start[i])
        while d < 240:
            k = rng.poisson(0.05 + 0.8 * u[i])
            probs = np.array([0.6, 0.1 + 0.3 * u[i], 0.2, 0.02 + 0.1 * u[i]])
            names = rng.choice(
                ["page_view", "pricing_view", "email_click", "demo_request"],
                k,
                p=probs / probs.sum(),
            )
            for name in names:
                t = (d + rng.uniform(0, 1)) * DAY
                out.append((t, i, str(name)))
                if name == "pricing_view":
                    last_pricing = d
            q = 0.0015 + 0.03 * u[i] * (1 + (d - last_pricing <= 7)) * (0.6 + 0.3 * size[i])
            if rng.uniform() < q:
                out.append(((d + 0.999) * DAY, i, "purchase"))
                break
            d += 1
    out.sort()
    return out, {i: int(size[i]) for i in range(n)}


def _auc(snaps: list[Snapshot], key: str) -> float | None:
    y = np.array([s.converted for s in snaps])
    if y.all() or not y.any():
        return None
    score = np.array([getattr(s, key) if key != "p_raw" else s.p_raw for s in snaps])
    return round(roc_auc(y, score), 4)


def population(n: int, seed: int) -> dict:
    """Replay the generated stream; progressive AUC per 30-day period and calibration."""
    stream, sizes = generate(n, seed)
    engine = ScoringEngine(LEADS, ConversionModel(), keep_learnt=True)
    engine.fits = {i: fit_score(LEADS, {"size": s}) for i, s in sizes.items()}
    t0 = time.perf_counter()
    for t, i, name in stream:
        engine.apply_event(i, name, {}, t)
    engine.advance(400 * DAY)  # every horizon has ended: learn the rest
    elapsed = time.perf_counter() - t0
    periods = []
    for lo in range(0, 240, 30):
        snaps = [s for s in engine.learnt if lo * DAY <= s.at < (lo + 30) * DAY]
        if len(snaps) < 200:
            continue
        periods.append(
            {
                "days": f"{lo}-{lo + 30}",
                "snapshots": len(snaps),
                "positives": sum(s.converted for s in snaps),
                "auc_rules_only": _auc(snaps, "behaviour"),
                "auc_predictive_raw": _auc(snaps, "p_raw"),
                "auc_predictive_calibrated": _auc(snaps, "p_cal"),
                "auc_combined": _auc(snaps, "combined"),
            }
        )
    warm = [s for s in engine.learnt if s.seen >= 2000]
    raw, cal = Binned(), Binned()
    for s in warm:
        raw.update(s.converted, s.p_raw)
        cal.update(s.converted, s.p_cal)
    return {
        "leads": n,
        "events": len(stream),
        "conversions": sum(1 for e in stream if e[2] == "purchase"),
        "replay_s": round(elapsed, 2),
        "events_per_s": round(len(stream) / elapsed),
        "periods": periods,
        "overall": {
            "auc_rules_only": _auc(engine.learnt, "behaviour"),
            "auc_predictive_calibrated": _auc(engine.learnt, "p_cal"),
            "auc_combined": _auc(engine.learnt, "combined"),
        },
        "warm_calibration": {"raw": raw.summary(), "calibrated": cal.summary()},
    }


CDNOW = ProgrammeConfig.model_validate(
    {
        "behaviour_rules": [{"key": "purchase", "event": "purchase", "points": 10}],
        "half_life_days": 90,
        "behaviour_max_points": 50,
        "fit": {"completeness_fields": []},
        "predictive": {
            "horizon_days": 90, "snapshot_every_days": 30, "max_idle_snapshots": 12,
            "conversion_events": ["purchase"],
        },
        "weights": {"behaviour": 0.5, "fit": 0.0, "predictive": 0.5},
    }
)  # fmt: skip


def cdnow(shared: Path) -> dict:
    """Purchase within 90 days of the 39-week cut-off: the engine vs BG/NBD P(alive)."""
    rows = load_master(shared / "data" / "cdnow" / "CDNOW_master.txt")
    cut = date(1997, 9, 30)
    cut_t = datetime.combine(cut, dtime(23, 59), UTC).timestamp()
    engine = ScoringEngine(CDNOW, ConversionModel())
    cust: dict[str, int] = {}
    first: dict[int, float] = {}
    days: dict[int, set[float]] = {}
    t0 = time.perf_counter()
    for r in rows:
        if r.day > cut:
            break
        pid = cust.setdefault(r.customer, len(cust) + 1)
        t = datetime.combine(r.day, dtime(12), UTC).timestamp()
        engine.apply_event(pid, "purchase", {}, t)
        first.setdefault(pid, t)
        days.setdefault(pid, set()).add(t)
    engine.advance(cut_t)
    elapsed = time.perf_counter() - t0
    end = cut + timedelta(days=90)
    buyers = {cust[r.customer] for r in rows if cut < r.day <= end and r.customer in cust}
    ids = sorted(cust.values())
    y = np.array([p in buyers for p in ids])
    from cloud.crm.scoring.model import features

    p_model = np.array(
        [
            engine.model.predict(features(engine.states[p], cut_t, 0.0, CDNOW.half_life_s))[1]
            for p in ids
        ]
    )
    combined = np.array([engine.score(p, cut_t).combined for p in ids])
    behaviour = np.array([engine.score(p, cut_t).behaviour for p in ids])
    wk = 7 * DAY
    x = np.array([len(days[p]) - 1 for p in ids], dtype=float)
    t_x = np.array([(max(days[p]) - first[p]) / wk for p in ids])
    big_t = np.array([(cut_t - first[p]) / wk for p in ids])
    fit = bgnbd.fit(x, t_x, big_t)
    alive = bgnbd.probability_alive(fit, x, t_x, big_t)
    expected = bgnbd.expected_purchases(fit, 90 / 7, x, t_x, big_t)
    return {
        "cutoff": str(cut),
        "customers": len(ids),
        "buyers_next_90d": int(y.sum()),
        "labels_learnt": engine.model.samples_seen,
        "replay_s": round(elapsed, 2),
        "auc_engine_predictive": round(roc_auc(y, p_model), 4),
        "auc_engine_combined": round(roc_auc(y, combined), 4),
        "auc_rules_only": round(roc_auc(y, behaviour), 4),
        "auc_bgnbd_p_alive": round(roc_auc(y, alive), 4),
        "auc_bgnbd_expected_purchases": round(roc_auc(y, expected), 4),
        "mean_predicted": round(float(p_model.mean()), 4),
        "observed_rate": round(float(y.mean()), 4),
    }


def plot(result: dict, path: Path) -> None:
    """Reliability curves of the raw and calibrated predictions (warm snapshots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for name in ("raw", "calibrated"):
        rel = result["population"]["warm_calibration"][name]
        pts = rel["reliability"]
        ax.plot([p["mean_p"] for p in pts], [p["rate"] for p in pts], marker="o",
                label=f"{name} (ECE {rel['ece']:.3f})")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("predicted P(convert within 30 days)")
    ax.set_ylabel("observed rate")
    ax.set_title("Lead scoring: reliability (generated population)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    """Parse arguments, run, print, save."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("MALLPULSE_SHARED", REPO.parent / "shared")),
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--skip-cdnow", action="store_true")
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()}  date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    result = {"population": population(args.leads, args.seed)}
    print(json.dumps(result["population"], indent=1))
    if not args.skip_cdnow:
        result["cdnow"] = cdnow(args.shared)
        print(json.dumps(result["cdnow"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
