"""Evaluation on CDNOW: the literature check of the CLV fits, and the churn model replayed through
the real ingestion path (the CRM's `record_transaction`) against BG/NBD at the same cut-off.

Used by `mallpulse cloud eval-cdnow` and bench/eval_cdnow.py; not a CI test (it replays 69,659
transactions, a few minutes on a 2-core machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from scipy import stats

from cloud.ml.churn.consumer import advance_clock, consume_all
from cloud.ml.churn.engine import ChurnConfig
from cloud.ml.churn.features import CustomerState
from cloud.ml.churn.model import ChurnModel
from cloud.ml.churn.store import LoadedModel, load_model
from cloud.ml.clv import bgnbd, gammagamma
from cloud.ml.scoring import ScoringContext, fit_clv, score_all, score_states

STORE = "cdnow"
START = date(1997, 1, 1)
#: Fader, Hardie and Lee (2005): BG/NBD and Gamma-Gamma on the CDNOW sample.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Row:
    """One CDNOW transaction."""

    line: int
    customer: str
    day: date
    cds: int
    value: Decimal


def load_master(path: Path) -> list[Row]:
    """CDNOW_master.txt in time order (ties in file order)."""
    rows = []
    with path.open(encoding="ascii") as fh:
        for n, line in enumerate(fh, start=1):
            parts = line.split()
            if len(parts) != 4 or not parts[0].isdigit():
                continue
            day = datetime.strptime(parts[1], "%Y%m%d").date()
            rows.append(Row(n, parts[0], day, int(parts[2]), Decimal(parts[3])))
    return sorted(rows, key=lambda r: (r.day, r.line))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC (Mann-Whitney U with mid-ranks for ties)."""
    y = np.asarray(labels, dtype=bool)
    ranks = stats.rankdata(scores)
    n1, n0 = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def roc_curve(labels: np.ndarray, scores: np.ndarray, points: int = 200) -> list[list[float]]:
    """[[fpr, tpr], ...] of the ROC curve, thinned to about `points` points."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    y = np.asarray(labels, dtype=bool)[order]
    tpr = np.concatenate([[0.0], np.cumsum(y) / max(int(y.sum()), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(~y) / max(int((~y).sum()), 1)])
    idx = np.unique(np.linspace(0, len(tpr) - 1, points).astype(int))
    return [[float(fpr[i]), float(tpr[i])] for i in idx]


def literature_check(shared: Path) -> dict[str, Any]:
    """Fit both models on the CDNOW sample summaries and compare with the published values."""
    s = np.loadtxt(shared / "data/cdnow/cdnow_customers_summary.csv", delimiter=",", skiprows=1)
    t0 = time.perf_counter()
    b = bgnbd.fit(s[:, 1], s[:, 2], s[:, 3])
    b_s = time.perf_counter() - t0
    g_data = np.loadtxt(
        shared / "data/cdnow/cdnow_customers_summary_with_transactions.csv",
        delimiter=",",
        skiprows=1,
    )
    g = gammagamma.fit(g_data[:, 1], g_data[:, 4])
    example = bgnbd.expected_purchases(b, 39, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    return {
        "bgnbd": b.as_dict(),
        "bgnbd_published": PUBLISHED_BGNBD,
        "bgnbd_fit_s": b_s,
        "gamma_gamma": g.as_dict(),
        "gamma_gamma_published": PUBLISHED_GG,
        "example_expected_39w": float(example[0]),
        "example_published": 1.226,
    }


def replay(
    conn: psycopg.Connection[Any], rows: Iterable[Row], progress: Progress
) -> dict[str, int]:
    """Record each row as a POS sale through the CRM; returns CDNOW id -> profile id."""
    from cloud.crm.transactions import record_transaction

    profiles: dict[str, int] = {}
    t0 = time.perf_counter()
    for n, r in enumerate(rows, start=1):
        res = record_transaction(
            conn,
            store_id=STORE,
            external_id=f"L{r.line}",
            occurred_at=datetime(r.day.year, r.day.month, r.day.day, 12, tzinfo=UTC),
            currency="USD",
            total_amount=r.value,
            identifiers={"pos_customer_id": f"cdnow-{r.customer}"},
            earn_points=False,
        )
        profiles[r.customer] = res.profile_id
        if n % 2000 == 0:
            conn.commit()
            progress(f"replayed {n} transactions ({n / (time.perf_counter() - t0):.0f}/s)")
    conn.commit()
    return profiles


def _consume(conn: psycopg.Connection[Any], config: ChurnConfig, progress: Progress) -> float:
    t0 = time.perf_counter()
    results = consume_all(conn, config=config, new_model=ChurnModel(), limit=5000, max_batches=100)
    applied = sum(r.applied for r in results)
    secs = time.perf_counter() - t0
    progress(f"churn consumer learnt {applied} events in {secs:.1f}s")
    return applied / secs if secs else 0.0


def _at_cutoff(
    conn: psycopg.Connection[Any], cutoff: datetime, config: ChurnConfig, progress: Progress
) -> tuple[list[CustomerState], list[dict[str, Any]], dict[str, float]]:
    """Fit CLV and score every customer at the cut-off (timed); returns states and scores."""
    from cloud.db.repositories import ml_customers as repo
    from cloud.ml.scoring import load_fits

    t0 = time.perf_counter()
    fit_clv(conn, at=cutoff.timestamp(), horizon_weeks=26, min_store_customers=10**9)
    fit_s = time.perf_counter() - t0
    loaded: LoadedModel = load_model(conn)
    ctx = ScoringContext(loaded, load_fits(conn), config, 26.0, cutoff.timestamp())
    t0 = time.perf_counter()
    scored = score_all(conn, ctx)
    score_s = time.perf_counter() - t0
    progress(f"scored {scored} customers into ml_customer_scores in {score_s:.1f}s")
    states = [CustomerState.from_json(d) for b in repo.iter_states(conn, "churn") for d in b]
    rows = score_states(states, ctx)
    return states, rows, {"clv_fit_s": fit_s, "score_all_s": score_s, "scored": scored}


def _labels(rows: list[Row], cutoff: date, horizon: timedelta) -> set[str]:
    """CDNOW ids that bought in (cutoff, cutoff + horizon]."""
    return {r.customer for r in rows if cutoff <= r.day < cutoff + horizon}


def _compare(
    states: list[CustomerState],
    scored: list[dict[str, Any]],
    buyers: set[str],
    profile_to_cdnow: dict[str, str],
) -> dict[str, Any]:
    ids = [profile_to_cdnow[s.customer_id] for s in states]
    churned = np.array([c not in buyers for c in ids])
    churn_p = np.array([r["churn_probability"] for r in scored])
    alive = np.array([r["p_alive"] for r in scored])
    expected = np.array([r["expected_purchases"] for r in scored])
    repeat = np.array([s.purchase_days > 1 for s in states])
    curves = {
        "churn model (river)": roc_curve(churned, churn_p),
        "BG/NBD -E[purchases]": roc_curve(churned, -expected),
        "BG/NBD 1 - P(alive)": roc_curve(churned, 1.0 - alive),
    }
    return {
        "roc_curves": curves,
        "customers": len(ids),
        "churn_rate": float(churned.mean()),
        "auc_churn_model": roc_auc(churned, churn_p),
        "auc_bgnbd_1_minus_p_alive": roc_auc(churned, 1.0 - alive),
        "auc_bgnbd_expected_purchases": roc_auc(churned, -expected),
        # BG/NBD gives P(alive) = 1 to every customer without a repeat purchase (dropout can only
        # follow a purchase), so P(alive) is also compared on repeat customers alone.
        "repeat_customers": int(repeat.sum()),
        "repeat_churn_rate": float(churned[repeat].mean()),
        "auc_repeat_churn_model": roc_auc(churned[repeat], churn_p[repeat]),
        "auc_repeat_bgnbd_1_minus_p_alive": roc_auc(churned[repeat], 1.0 - alive[repeat]),
        "auc_repeat_bgnbd_expected_purchases": roc_auc(churned[repeat], -expected[repeat]),
    }


def run(
    conn: psycopg.Connection[Any],
    shared: Path,
    *,
    cutoff_weeks: int = 52,
    horizon_weeks: int = 26,
    progress: Progress = print,
    customers: int | None = None,
) -> dict[str, Any]:
    """The whole evaluation on an empty, migrated database; returns every reported number.

    `customers` keeps only the first N CDNOW customer ids (a quick slice for CI).
    """
    config = ChurnConfig(horizon_days=7.0 * horizon_weeks)
    out: dict[str, Any] = {"literature": literature_check(shared)}
    rows = load_master(shared / "data/cdnow/CDNOW_master.txt")
    if customers is not None:
        rows = [r for r in rows if int(r.customer) <= customers]
    cutoff = START + timedelta(weeks=cutoff_weeks)
    cut_dt = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
    conn.execute(
        "INSERT INTO stores (id, name) VALUES (%s, 'CDNOW') ON CONFLICT DO NOTHING", (STORE,)
    )
    before = [r for r in rows if r.day < cutoff]
    t0 = time.perf_counter()
    profiles = replay(conn, before, progress)
    replay_rate = len(before) / (time.perf_counter() - t0)
    consume_rate = _consume(conn, config, progress)
    advance_clock(conn, config=config, to=cut_dt)
    states, scored, timing = _at_cutoff(conn, cut_dt, config, progress)
    back = {str(p): c for c, p in profiles.items()}
    buyers = _labels(rows, cutoff, timedelta(weeks=horizon_weeks))
    out["cutoff"] = {"date": cutoff.isoformat(), **_compare(states, scored, buyers, back)}
    out["cutoff"]["model_metrics_at_cutoff"] = load_model(conn).model.metrics()
    after = [r for r in rows if r.day >= cutoff]
    profiles.update(replay(conn, after, progress))
    _consume(conn, config, progress)
    end = max(r.day for r in rows) + timedelta(days=1)
    advance_clock(conn, config=config, to=datetime(end.year, end.month, end.day, tzinfo=UTC))
    model = load_model(conn).model
    out["progressive"] = {**model.metrics(), "drift": [vars(e) for e in model.drift_events]}
    out["timing"] = {**timing, "replay_tx_per_s": replay_rate, "consume_events_per_s": consume_rate}
    out["transactions"] = len(rows)
    return out


def run_in_scratch_database(
    admin_url: str, shared: Path, *, keep: bool = False, progress: Progress = print, **kw: Any
) -> dict[str, Any]:
    """Create a uniquely named database, migrate it, run the evaluation, drop it (unless keep)."""
    import uuid

    from cloud.db.migrate import migrate

    name = f"mp_eval_cdnow_{uuid.uuid4().hex[:10]}"
    base = admin_url.rpartition("/")[0]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    try:
        migrate(url)
        progress(f"scratch database {name} migrated")
        with psycopg.connect(url) as conn:
            result = run(conn, shared, progress=progress, **kw)
        result["database"] = url if keep else None
        return result
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(result: dict[str, Any]) -> str:
    """A plain-text report of `run`'s numbers."""
    lit, cut, prog, tim = (result[k] for k in ("literature", "cutoff", "progressive", "timing"))
    b, bp, g, gp = (
        lit["bgnbd"],
        lit["bgnbd_published"],
        lit["gamma_gamma"],
        lit["gamma_gamma_published"],
    )
    lines = [
        "CDNOW literature check (Fader, Hardie and Lee 2005), ours vs published:",
        *(f"  BG/NBD {k:<15} {b[k]:>10.4f} {bp[k]:>10.4f}" for k in bp),
        *(f"  Gamma-Gamma {k:<10} {g[k]:>10.4f} {gp[k]:>10.4f}" for k in gp),
        f"  E[X(39w) | x=2, t_x=30.43, T=38.86] {lit['example_expected_39w']:.4f} (paper 1.226)",
        f"Cut-off {cut['date']} ({cut['customers']} customers, "
        f"churn rate {cut['churn_rate']:.3f}):",
        f"  ROC AUC churn model (river)        {cut['auc_churn_model']:.4f}",
        f"  ROC AUC BG/NBD 1 - P(alive)        {cut['auc_bgnbd_1_minus_p_alive']:.4f}",
        f"  ROC AUC BG/NBD -E[purchases 26w]   {cut['auc_bgnbd_expected_purchases']:.4f}",
        f"  repeat customers only ({cut['repeat_customers']}, churn rate "
        f"{cut['repeat_churn_rate']:.3f}): model {cut['auc_repeat_churn_model']:.4f}, "
        f"1 - P(alive) {cut['auc_repeat_bgnbd_1_minus_p_alive']:.4f}, "
        f"-E[purchases] {cut['auc_repeat_bgnbd_expected_purchases']:.4f}",
        f"Progressive validation over the whole replay ({prog['samples_seen']} labels):",
        f"  all labels: ROC AUC {prog['roc_auc']}, log loss {prog['log_loss']}",
        f"  after warm-up ({prog['warm_samples']} labels predicted by a model that had learnt"
        f" >= 1000): ROC AUC {prog['warm_roc_auc']}, log loss {prog['warm_log_loss']}",
        f"  last 5000 labels: ROC AUC {prog['rolling_roc_auc']}, log loss "
        f"{prog['rolling_log_loss']}; drift events {prog['drift_events']}",
        f"Timing: replay {tim['replay_tx_per_s']:.0f} tx/s through record_transaction, consumer "
        f"{tim['consume_events_per_s']:.0f} events/s, scoring {tim['scored']} customers "
        f"{tim['score_all_s']:.1f}s, CLV fit {tim['clv_fit_s']:.2f}s",
    ]
    return "\n".join(lines)
