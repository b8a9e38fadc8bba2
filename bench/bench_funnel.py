"""Benchmark: a 4-step funnel with a 30-day window, against a bare sequential scan.

In one run, on a private database (plain PostgreSQL, or whatever MALLPULSE_BENCH_PG serves):
  1. N events (default 10 M) of P profiles (default 1 M) over 60 days, 12 event names, the
     four funnel steps among them with falling frequency, a `plan` property on each;
  2. baselines: a sequential scan of the rows the funnel reads (the steps' events in the
     period plus the window), reading the columns it reads, with PostgreSQL's default
     parallelism (up to 2 workers) and in one process (the funnel's sort and window passes
     run in one);
  3. the funnel (cloud.crm.analytics.funnels.funnel), strict order, breakdown by `plan`.
Each is run once to warm the cache, then `--repeat` times, in `--rounds` alternating rounds;
prints the best and median times and the ratio funnel/scan (aim <= 3).

    python bench/bench_funnel.py [--events 10000000] [--profiles 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from bench_ingest_support import bench_database

from cloud.crm.analytics import funnels
from cloud.crm.analytics.schemas import EventMatcher, FunnelQuery

STEPS = ("Product Viewed", "Added To Cart", "Checkout Started", "Order Completed")
OTHERS = ("Page Viewed", "Search", "Login", "Logout", "Wishlist", "Share", "Review", "Support")
DAYS = 60


def generate(conn: psycopg.Connection[Any], events: int, profiles: int, start: datetime) -> None:
    """Profiles and events made by the server itself (generate_series), then ANALYZE."""
    conn.execute("SELECT crm_events_ensure_partitions(4, 1)")
    conn.execute(
        "INSERT INTO crm_profiles (identified) SELECT true FROM generate_series(1, %s)",
        (profiles,),
    )
    # weights: steps 30/12/6/3 %, the 8 others share the rest
    conn.execute(
        "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
        " profile_id, properties)"
        " SELECT t, t, 'bench', i::text, 'track', CASE WHEN r < 0.30 THEN %(s1)s"
        " WHEN r < 0.42 THEN %(s2)s WHEN r < 0.48 THEN %(s3)s WHEN r < 0.51 THEN %(s4)s"
        " ELSE (%(others)s::text[])[1 + (i %% 8)] END, 1 + (hashint4(i) & 2147483647) %% %(p)s,"
        " jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + i %% 3])"
        " FROM (SELECT i, random() AS r,"
        " %(start)s + random() * %(span)s AS t FROM generate_series(1, %(n)s) i) g",
        {"s1": STEPS[0], "s2": STEPS[1], "s3": STEPS[2], "s4": STEPS[3], "others": list(OTHERS),
         "p": profiles, "start": start, "span": timedelta(days=DAYS), "n": events},
    )  # fmt: skip
    conn.execute("ANALYZE crm_events")
    conn.execute("ANALYZE crm_profiles")
    conn.commit()


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best and median seconds of `repeat` runs after one warm-up, and the last result (the
    best is the figure least disturbed by other work on a shared machine)."""
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def main() -> None:
    """Generate, then time the scan and the funnel in the same run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="scan/funnel rounds, alternated")
    args = ap.parse_args()
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=DAYS + 1)
    q = FunnelQuery(
        start=start,
        end=start + timedelta(days=DAYS - 30),
        steps=[EventMatcher(event=s) for s in STEPS],
        window_seconds=30 * 86400,
        breakdown="plan",
    )
    with bench_database() as url, psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        generate(conn, args.events, args.profiles, start)
        print(f"generated {args.events:,} events of {args.profiles:,} profiles"
              f" in {time.perf_counter() - t0:.1f} s")  # fmt: skip

        def scan(workers: int) -> Any:
            conn.execute("SET enable_indexscan = off; SET enable_bitmapscan = off")
            conn.execute(f"SET max_parallel_workers_per_gather = {workers}")
            row = conn.execute(
                "SELECT count(*), count(profile_id), max(occurred_at), max(id),"
                " count(properties) FROM crm_events WHERE occurred_at >= %s"
                " AND occurred_at < %s AND event = ANY(%s)",
                (q.start, q.end + timedelta(seconds=q.window_seconds), list(STEPS)),
            ).fetchone()
            conn.rollback()
            return row

        def run_funnel() -> Any:
            out = funnels.funnel(conn, q)
            conn.rollback()
            return out

        # alternated, so both see the same load
        scans, serial, funnels_ = [], [], []
        for _ in range(args.rounds):
            scans.append(timed(lambda: scan(2), args.repeat))
            serial.append(timed(lambda: scan(0), args.repeat))
            funnels_.append(timed(run_funnel, args.repeat))
        t_scan, m_scan, rows = min(scans, key=lambda r: r[0])
        t_serial, m_serial, _ = min(serial, key=lambda r: r[0])
        t_funnel, m_funnel, result = min(funnels_, key=lambda r: r[0])
    counts = [s.count for s in result.total.steps]
    print(f"rows read: {rows[0]:,}; people per step: {counts}")
    print(f"sequential scan (up to 2 parallel workers): best {t_scan:.2f} s, median {m_scan:.2f} s")
    print(f"sequential scan, one process: best {t_serial:.2f} s, median {m_serial:.2f} s")
    print(
        f"funnel (4 steps, 30-day window, breakdown): best {t_funnel:.2f} s,"
        f" median {m_funnel:.2f} s"
    )
    print(
        f"ratio funnel/scan: best {t_funnel / t_scan:.2f},"
        f" median {m_funnel / m_scan:.2f} (aim <= 3)"
    )
    print(f"ratio funnel/one-process scan: best {t_funnel / t_serial:.2f}")


if __name__ == "__main__":
    main()
