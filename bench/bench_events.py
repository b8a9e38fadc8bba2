"""Benchmark: behavioural-event ingest through the service's batch path, against a raw COPY.

In one run, on a private database (plain PostgreSQL, or whatever MALLPULSE_BENCH_PG serves):
  1. baseline: the very rows the service stores, COPYed straight into crm_events (one
     connection, one transaction per batch) - the ceiling for any ingest path; taken again
     just before the service run, and the ratio uses the baseline next to it;
  2. the service: N Segment-spec track calls as JSON batch bodies (the bytes a client sends),
     each parsed by the API's schema (BatchIn) and stored by `service.ingest` (write-key
     source, messageId claims, clock-skew correction, tracking plan, profile lookup, COPY,
     commit per batch);
  3. the same batches again: every messageId is a duplicate, nothing is stored.
Prints events/s of each and the ratio service/COPY (aim >= 0.5; >= 20,000 events/s).

    python bench/bench_events.py [--n 20000] [--batch 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from bench_ingest_support import bench_database

from cloud.crm.events import repository, service, sources
from cloud.crm.events.repository import Event
from cloud.crm.events.schemas import BatchIn


def bodies(n: int, batch: int) -> list[bytes]:
    """N track calls from 2,000 visitors in JSON batch bodies, with timestamps and sentAt."""
    now = datetime.now(UTC)
    out = []
    for start in range(0, n, batch):
        calls = []
        for i in range(start, min(n, start + batch)):
            calls.append({
                "type": "track", "event": ("Product Viewed", "Added To Cart")[i % 2],
                "messageId": uuid.uuid4().hex, "anonymousId": f"anon-{i % 2000}",
                "timestamp": (now - timedelta(seconds=i % 600)).isoformat(),
                "properties": {"sku": f"SKU-{i % 500}", "price": 19.9, "store_id": "s1",
                               "revenue": 19.9, "category": "shoes"},
                "context": {"library": {"name": "bench", "version": "1"}},
            })  # fmt: skip
        out.append(json.dumps({"batch": calls, "sentAt": now.isoformat()}).encode())
    return out


def rows_of(body: bytes, source_id: str) -> list[Event]:
    """The rows the service would store for one body (for the COPY baseline)."""
    parsed = BatchIn.model_validate_json(body)
    now = datetime.now(UTC)
    return [
        Event(
            occurred_at=c.timestamp or now,
            received_at=now,
            source_id=source_id,
            message_id=c.message_id or "",
            type=c.type,
            event=c.event,
            anonymous_id=c.anonymous_id,
            properties=dict(c.properties or {}),
            store_id="s1",
            revenue=Decimal("19.9"),
        )
        for c in parsed.batch
    ]


def copy_baseline(url: str, batches: list[list[Event]]) -> float:
    """Seconds to COPY every row, one transaction per batch."""
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        for rows in batches:
            repository.copy_events(conn, rows)
            conn.commit()
    return time.perf_counter() - start


def service_run(
    url: str, source: Any, payloads: list[bytes], *, parse: bool = True
) -> tuple[float, int]:
    """Seconds to ingest every body through the service (parsing included unless `parse` is
    False: then the bodies are parsed before the clock starts); events accepted."""
    accepted = 0
    ready = None if parse else [BatchIn.model_validate_json(body) for body in payloads]
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        for i, body in enumerate(payloads):
            parsed = ready[i] if ready is not None else BatchIn.model_validate_json(body)
            res = service.ingest(
                conn, source=source, calls=parsed.batch, received_at=datetime.now(UTC),
                sent_at=parsed.sent_at, context=parsed.context,
            )  # fmt: skip
            accepted += res.accepted
    return time.perf_counter() - start, accepted


def truncate(url: str) -> None:
    """Empty the events and their message ids (a fair start for each run)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE crm_events, crm_event_message_ids")
        conn.execute("VACUUM ANALYZE crm_events")


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="events per run")
    ap.add_argument("--batch", type=int, default=500, help="calls per batch (max 500)")
    ap.add_argument("--repeat", type=int, default=3, help="runs; the best of each is reported")
    args = ap.parse_args()
    payloads = bodies(args.n, args.batch)
    with bench_database() as url:
        with psycopg.connect(url) as conn:
            source, _ = sources.create_source(conn, source_id="bench", name="Bench",
                                              consent_required=False)  # fmt: skip
        baseline_rows = [rows_of(b, "bench") for b in payloads]
        best = {"copy": float("inf"), "svc": float("inf"), "svc_only": float("inf")}
        dup = 0.0
        for _ in range(args.repeat):
            for name, parse in (("svc", True), ("svc_only", False)):
                truncate(url)
                best["copy"] = min(best["copy"], copy_baseline(url, baseline_rows))
                truncate(url)
                took, accepted = service_run(url, source, payloads, parse=parse)
                assert accepted == args.n, f"stored {accepted} of {args.n}"
                best[name] = min(best[name], took)
            dup, again = service_run(url, source, payloads)
            assert again == 0, "a duplicate was stored"
    n, copy_s = args.n, best["copy"]
    print(f"events: {n} in batches of {args.batch}, best of {args.repeat}")
    print(f"raw COPY baseline              {n / copy_s:>10,.0f} events/s")
    print(f"JSON bodies -> service         {n / best['svc']:>10,.0f} events/s")
    print(f"parsed calls -> service        {n / best['svc_only']:>10,.0f} events/s")
    print(f"  all duplicates (JSON)        {n / dup:>10,.0f} events/s")
    print(f"ratio JSON->service / COPY     {copy_s / best['svc']:>10.2f}  (aim >= 0.5)")
    print(f"ratio service / COPY           {copy_s / best['svc_only']:>10.2f}")


if __name__ == "__main__":
    main()
