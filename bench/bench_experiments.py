"""Experiments: analysis of an experiment with many exposures and two metrics, against a bare
aggregate query over the same assignments.

Data (generated in SQL with generate_series, no rows through Python): `--exposures` customers
assigned 50/50 over 14 days; `--buyers` of them (a share) have a `buy` event with an `amount`
within the window after exposure, some one in the week before (pre-period); treatment buys a
little more. Metrics: conversion on `buy` (primary) and the sum of `amount` (guardrail), with
CUPED on. Timed (median of 3 after one warm-up run):

- analysis: `service.results` (arm sizes + one statement per metric + the statistics);
- baseline: `SELECT variant, count(*) FROM crm_experiment_assignments WHERE experiment_id = ..
  GROUP BY variant`, the bare aggregate every analysis needs at least;
- join baseline: one hand-written join of events to assignments summing per variant (no
  per-customer step), to show what the per-customer grouping costs.

    python bench/bench_experiments.py [--exposures 10000000] [--buyers 0.1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from cloud.crm.experiments import service  # noqa: E402
from cloud.crm.experiments.schemas import Design  # noqa: E402
from cloud.db.migrate import migrate  # noqa: E402

DESIGN = {
    "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
    "primary_metric": {"name": "buys", "kind": "conversion", "event": "buy", "window_hours": 168},
    "guardrails": [
        {"name": "basket", "kind": "sum", "event": "buy", "property": "amount",
         "window_hours": 168}
    ],
    "analysis": {"cuped": True},
}  # fmt: skip
BASELINE = (
    "SELECT variant, count(*) FROM crm_experiment_assignments WHERE experiment_id = %s"
    " GROUP BY variant"
)
JOIN_BASELINE = (
    "SELECT a.variant, count(*), sum((e.properties->>'amount')::float8)"
    " FROM crm_experiment_assignments a JOIN crm_events e ON e.profile_id = a.profile_id"
    " AND e.event = 'buy' AND e.occurred_at >= a.assigned_at"
    " AND e.occurred_at < a.assigned_at + interval '168 hours'"
    " WHERE a.experiment_id = %s GROUP BY a.variant"
)


def load(url: str, exposures: int, buyers: float) -> tuple[int, float]:
    """Create the experiment and its data; returns its id and the seconds taken."""
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(
            "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type,"
            " event, profile_id) VALUES (now(), now(), 'bench', 'seed', 'track', 'buy', 0)"
        )
        design = Design.model_validate(DESIGN)
        eid = service.create(c, key="bench", name="bench", description="", design=design,
                             actor="bench").id  # fmt: skip
        c.execute("UPDATE crm_experiments SET status = 'running' WHERE id = %s", (eid,))
        c.execute(
            "INSERT INTO crm_experiment_assignments (experiment_id, profile_id, variant,"
            " assigned_at) SELECT %s, g, (hashint4(g) & 1)::smallint,"
            " timestamptz '2026-11-01' + (g %% 1209600) * interval '1 second'"
            " FROM generate_series(1, %s) g",
            (eid, exposures),
        )
        # buyers: a post-exposure buy (treatment a little likelier), a third also pre-period
        c.execute(
            "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type,"
            " event, profile_id, properties)"
            " SELECT a.assigned_at + (1 + a.profile_id %% 100) * interval '1 hour', now(),"
            " 'bench', 'm' || a.profile_id, 'track', 'buy', a.profile_id,"
            " jsonb_build_object('amount', 10 + a.profile_id %% 90)"
            " FROM crm_experiment_assignments a"
            " WHERE a.experiment_id = %s"
            " AND (hashint8(a.profile_id + 7) & 1023) < %s * 1024 * (1 + 0.1 * a.variant)",
            (eid, buyers),
        )
        c.execute(
            "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type,"
            " event, profile_id, properties)"
            " SELECT a.assigned_at - (1 + a.profile_id %% 100) * interval '1 hour', now(),"
            " 'bench', 'p' || a.profile_id, 'track', 'buy', a.profile_id,"
            " jsonb_build_object('amount', 5 + a.profile_id %% 50)"
            " FROM crm_experiment_assignments a WHERE a.experiment_id = %s"
            " AND (hashint8(a.profile_id + 11) & 1023) < %s * 1024 / 3",
            (eid, buyers),
        )
        c.execute("ANALYZE crm_experiment_assignments")
        c.execute("ANALYZE crm_events")
        n = c.execute("SELECT count(*) FROM crm_events WHERE event = 'buy'").fetchone()
        print(f"events: {n[0] if n else 0} buy events")
    return eid, time.perf_counter() - t0


def _median(fn: Callable[[], Any], runs: int = 3) -> float:
    fn()  # warm-up (caches, plans)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(url: str, eid: int) -> None:
    """Print the analysis time, the baselines and the ratios."""
    with psycopg.connect(url, autocommit=True) as c:
        analysis = _median(lambda: service.results(c, eid))
        base = _median(lambda: c.execute(BASELINE, (eid,)).fetchall())
        join = _median(lambda: c.execute(JOIN_BASELINE, (eid,)).fetchall())
        res = service.results(c, eid)
    primary = res.metrics[0].comparisons[0]
    print(f"exposures: {[e.n for e in res.exposures]}  srm p={res.srm.p_value:.3f}")
    print(f"primary lift: {primary.relative.estimate:.4f} p={primary.absolute.p_value:.2g}")
    print(f"analysis (2 metrics, CUPED): {analysis:.2f} s")
    print(f"bare aggregate (count per variant): {base:.2f} s  ratio {analysis / base:.1f}x")
    print(f"hand-written join aggregate: {join:.2f} s  ratio {analysis / join:.1f}x")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> None:
    """Create a scratch database, load it, measure, drop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exposures", type=int, default=10_000_000)
    parser.add_argument("--buyers", type=float, default=0.1, help="Share with a buy event.")
    args = parser.parse_args(argv)
    admin = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"mp_bench_experiments_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.rpartition("/")[0] + "/" + name
    try:
        migrate(url)
        eid, took = load(url, args.exposures, args.buyers)
        print(f"loaded {args.exposures} exposures in {took:.0f} s")
        measure(url, eid)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
