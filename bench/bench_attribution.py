"""Attribution at volume: conversions over touchpoints, every model, against a bare scan.

Creates a scratch database with `--profiles` people, `--touches` touchpoints over 90 days on six
channels and `--conversions` sales, then times (median of `--runs`):
  - the baseline: a bare scan of the same touchpoints (count and a hash of every channel), the
    floor any engine pays to read them;
  - attribution by channel with the models asked for (`--models`), end to end through
    `cloud.crm.attribution.service.attribution` (SQL stream, journeys, models).

    python bench/bench_attribution.py [--touches 10000000 --conversions 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from cloud.crm.attribution import service  # noqa: E402
from cloud.crm.attribution.journeys import Dimension  # noqa: E402
from cloud.crm.attribution.models import Model  # noqa: E402
from cloud.db.migrate import migrate  # noqa: E402

END = datetime(2026, 11, 30, tzinfo=UTC)
BASELINE = (
    "SELECT count(*), sum(hashtext(channel)) FROM crm_touchpoints"
    " WHERE occurred_at >= %s AND occurred_at < %s"
)


def load(url: str, profiles: int, touches: int, conversions: int) -> float:
    """Generate the data set with set-based SQL; returns seconds taken."""
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as c:
        for trigger in ("crm_segment_profiles",):
            c.execute(f"ALTER TABLE crm_profiles DISABLE TRIGGER {trigger}")
        c.execute("ALTER TABLE crm_transactions DISABLE TRIGGER USER")
        c.execute("INSERT INTO stores (id, name) VALUES ('b1', 'Bench')")
        c.execute(
            "INSERT INTO crm_profiles (attributes) SELECT '{}' FROM generate_series(1, %s)",
            (profiles,),
        )
        c.execute(
            "INSERT INTO crm_records (profile_id, source) SELECT id, 'bench' FROM crm_profiles"
        )
        c.execute(
            "INSERT INTO crm_touchpoints (profile_id, record_id, channel, event, occurred_at)"
            " SELECT r.id, r.id, (ARRAY['web','app','email','sms','support','store_visit'])"
            "[1 + (random() * 5)::int], 'click', %s - random() * interval '90 days'"
            " FROM generate_series(1, %s) i"
            " JOIN crm_records r ON r.id = 1 + (i::bigint * 7919) %% %s",
            (END, touches, profiles),
        )
        c.execute(
            "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id,"
            " occurred_at, currency, total_amount)"
            " SELECT r.id, r.id, 'b1', i::text, %s - random() * interval '60 days', 'CNY',"
            " (5 + random() * 300)::numeric(14, 2)"
            " FROM generate_series(1, %s) i"
            " JOIN crm_records r ON r.id = 1 + (i::bigint * 104729) %% %s",
            (END, conversions, profiles),
        )
        c.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


def _median(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=500_000)
    parser.add_argument("--touches", type=int, default=10_000_000)
    parser.add_argument("--conversions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default="last_touch,linear,markov,shapley")
    args = parser.parse_args(argv)
    models = [Model(m) for m in args.models.split(",")]
    admin = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"mp_bench_attribution_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.rpartition("/")[0] + "/" + name
    try:
        migrate(url)
        took = load(url, args.profiles, args.touches, args.conversions)
        print(f"loaded {args.touches:,} touches, {args.conversions:,} sales in {took:.0f} s")
        start = END - timedelta(days=60)
        with psycopg.connect(url) as conn:

            def bare() -> None:
                conn.execute(BASELINE, (start - timedelta(days=30), END)).fetchone()

            def attribute() -> None:
                report = service.attribution(
                    conn, start=start, end=END, models=models, by=Dimension.CHANNEL,
                    lookback_days=30, half_life_days=7.0, markov_order=1, currency="CNY",
                )  # fmt: skip
                assert report["conversions"] > 0

            base = _median(bare, args.runs)
            full = _median(attribute, args.runs)
        load_avg = os.getloadavg()[0]
        print(f"load average {load_avg:.1f}; models {','.join(m.value for m in models)}")
        print(f"bare scan of the touchpoints   {base:8.2f} s")
        print(f"attribution, end to end        {full:8.2f} s   ratio {full / base:6.1f}x")
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
