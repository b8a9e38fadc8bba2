"""Segments: full evaluation against a hand-written count(*), and live membership latency.

1. full evaluation: one segment rule (country, "bought in the last 30 days", purchases total)
   compiled and counted over every profile, against a hand-written count(*) of the same
   predicate (correlated EXISTS / sum subqueries, as one would write it). Median of 3 runs each.
2. incremental: 50 live dynamic segments; a producer commits `--rate` events per second (in
   batches every 100 ms), each one making one person enter one segment; the consumer loops
   `process_batch`. Latency is from the event's commit (accepted) to the commit of the batch
   that wrote its segment.entered domain event; p50/p99 reported.

    python bench/bench_segments.py [--profiles 1000000] [--rate 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from cloud.crm.segments import handlers, service  # noqa: E402
from cloud.crm.segments import rules as r  # noqa: E402
from cloud.crm.segments.compiler import compile_rule, count_query  # noqa: E402
from cloud.db.migrate import migrate  # noqa: E402

RULE = r.AndRule(
    type="and",
    rules=[
        r.AttributeRule(type="attribute", attribute="country", op="eq", value="DE"),
        r.EventRule(type="event", event="buy", min_count=1, within_days=30),
        r.PurchaseRule(type="purchases", metric="total", op="gte", value=50, within_days=365),
    ],
)
BASELINE = """
SELECT count(*) FROM crm_profiles p
WHERE p.merged_into IS NULL AND p.attributes ->> 'country' = 'DE'
  AND EXISTS (SELECT 1 FROM crm_events e WHERE e.profile_id = p.id AND e.event = 'buy'
              AND e.occurred_at >= %(now)s - interval '30 days' AND e.occurred_at <= %(now)s)
  AND (SELECT sum(t.total_amount) FROM crm_transactions t WHERE t.profile_id = p.id
       AND t.kind = 'sale' AND t.reversed_at IS NULL
       AND t.occurred_at >= %(now)s - interval '365 days' AND t.occurred_at <= %(now)s) >= 50
"""


def load(url: str, profiles: int) -> float:
    """Generate profiles, 2 events and 0.5 purchases per profile; returns seconds taken."""
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("ALTER TABLE crm_profiles DISABLE TRIGGER crm_segment_profiles")
        c.execute("INSERT INTO stores (id, name) VALUES ('b1', 'Bench')")
        c.execute(
            "INSERT INTO crm_profiles (attributes) SELECT jsonb_build_object('country',"
            " (ARRAY['US','GB','DE','CN'])[1 + i %% 4], 'birth_year', 1950 + i %% 50)"
            " FROM generate_series(1, %s) i",
            (profiles,),
        )
        c.execute("ALTER TABLE crm_profiles ENABLE TRIGGER crm_segment_profiles")
        c.execute(
            "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
            " profile_id, properties) SELECT now() - random() * interval '90 days', now(), 'b',"
            " i::text, 'track', (ARRAY['view','buy','view'])[1 + i %% 3],"
            " 1 + (random() * (%s - 1))::bigint, '{}' FROM generate_series(1, %s) i",
            (profiles, 2 * profiles),
        )
        c.execute(
            "INSERT INTO crm_records (profile_id, source) SELECT id, 'bench' FROM crm_profiles"
            " WHERE id % 2 = 0"
        )
        c.execute(
            "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id,"
            " occurred_at, currency, total_amount) SELECT profile_id, id, 'b1', id::text,"
            " now() - random() * interval '400 days', 'EUR', (random() * 120)::numeric(14, 2)"
            " FROM crm_records"
        )
        c.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


def _median_s(conn: psycopg.Connection[Any], run: Any) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(3):
        t0 = time.perf_counter()
        result = run(conn)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def full_evaluation(url: str) -> None:
    """Print the compiled rule's count time against the hand-written count(*)."""
    now = datetime.now(UTC)
    q = count_query(compile_rule(RULE, now=now))

    def compiled(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(psycopg.sql.Composed([q.sql]), q.params).fetchone()
        return int(row[0]) if row else 0

    def baseline(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(BASELINE, {"now": now}).fetchone()  # type: ignore[arg-type]
        return int(row[0]) if row else 0

    with psycopg.connect(url, autocommit=True) as conn:
        base_s, base_n = _median_s(conn, baseline)
        seg_s, seg_n = _median_s(conn, compiled)
    assert base_n == seg_n, (base_n, seg_n)
    print(f"full evaluation: {seg_n} members")
    print(f"  hand-written count(*): {base_s * 1000:8.0f} ms")
    print(f"  compiled segment rule: {seg_s * 1000:8.0f} ms  ratio {seg_s / base_s:.2f}x")


def _segments(url: str, n: int) -> None:
    with psycopg.connect(url) as conn:
        for k in range(n):
            rule = r.AndRule(
                type="and",
                rules=[
                    r.EventRule(type="event", event=f"live{k}", min_count=1, within_days=30),
                    r.NotRule(
                        type="not",
                        rule=r.AttributeRule(
                            type="attribute", attribute="vip", op="eq", value=True
                        ),
                    ),
                ],
            )
            service.create(
                conn, name=f"live {k}", description="", kind="dynamic", rule=rule, actor="bench"
            )
        handlers.process_all(conn)  # start from the end of the sources


def incremental(url: str, *, profiles: int, rate: int, seconds: float, segments: int) -> None:
    """Print entry latency percentiles with `segments` live segments at `rate` events/s."""
    _segments(url, segments)
    accepted: dict[tuple[int, int], float] = {}
    latencies: list[float] = []
    stop = threading.Event()

    def produce() -> None:
        per_tick = max(1, rate // 10)
        i = 0
        with psycopg.connect(url) as conn:
            t_next = time.perf_counter()
            while not stop.is_set():
                batch = []
                for _ in range(per_tick):
                    i += 1
                    batch.append((1 + (i * 7919) % profiles, i % segments))
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO crm_events (occurred_at, received_at, source_id,"
                        " message_id, type, event, profile_id)"
                        " VALUES (now(), now(), 'live', %s, 'track', %s, %s)",
                        [(uuid.uuid4().hex, f"live{k}", p) for p, k in batch],
                    )
                conn.commit()
                t = time.perf_counter()
                for p, k in batch:
                    accepted.setdefault((p, k), t)
                t_next += 0.1
                time.sleep(max(0.0, t_next - time.perf_counter()))

    seg_ids: dict[int, int] = {}
    with psycopg.connect(url) as conn:
        for sid, name in conn.execute("SELECT id, name FROM crm_segments"):
            seg_ids[int(sid)] = int(name.split()[1])
        mark = int(conn.execute("SELECT coalesce(max(id), 0) FROM domain_events").fetchone()[0])  # type: ignore[index]
        conn.commit()
        producer = threading.Thread(target=produce)
        producer.start()
        batches, end, drained = 0, time.perf_counter() + seconds, False
        while not drained:
            if time.perf_counter() >= end:
                stop.set()
            finished = not producer.is_alive()  # checked before the batch: it reads all
            res = handlers.process_batch(conn, limit=5000)
            done = time.perf_counter()
            batches += 1
            rows = conn.execute(
                "SELECT id, payload FROM domain_events WHERE id > %s AND topic = 'segment.entered'"
                " ORDER BY id",
                (mark,),
            ).fetchall()
            conn.commit()
            for eid, payload in rows:
                mark = int(eid)
                key = (int(payload["profile_id"]), seg_ids[int(payload["segment_id"])])
                if key in accepted:
                    latencies.append(done - accepted[key])
            drained = finished and res.read == 0 and not res.busy
            if res.read == 0:
                time.sleep(0.01)
        producer.join()
    latencies.sort()
    n = len(latencies)
    p50 = latencies[n // 2] if n else float("nan")
    p99 = latencies[min(n - 1, int(n * 0.99))] if n else float("nan")
    print(
        f"incremental: {segments} segments, {rate} events/s for {seconds:.0f} s, {batches} batches"
    )
    print(f"  entries measured: {n} of {len(accepted)} accepted")
    print("  event accepted -> segment.entered committed:", end="")
    print(f" p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")


def main(argv: list[str] | None = None) -> None:
    """Create a scratch database, load it, run both cases, print figures, drop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000, help="Events per second.")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--segments", type=int, default=50)
    args = parser.parse_args(argv)
    admin = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"mp_bench_segments_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.rpartition("/")[0] + "/" + name
    try:
        migrate(url)
        print(f"loaded {args.profiles} profiles in {load(url, args.profiles):.0f} s")
        full_evaluation(url)
        incremental(
            url,
            profiles=args.profiles,
            rate=args.rate,
            seconds=args.seconds,
            segments=args.segments,
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
