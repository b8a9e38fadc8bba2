"""Marketing automation: executions in flight, trigger-to-first-action latency, and steps per
second of one Celery worker as a ratio to a bare Celery no-op task on the same broker, all in
one run on a scratch database.

1. In flight: `--inflight` executions (100 k by default) waiting at a timer a day away, bulk
   inserted as enrolment writes them (execution row, due row); the time to claim a batch of 200
   due executions among them (FOR UPDATE SKIP LOCKED) is printed.
2. Steps per worker: one real Celery worker (solo pool, Redis, a private queue). Baseline: the
   worker drains `--noops` no-op tasks that were queued before it started. Then `--executions`
   executions of a 5-node workflow (entry, condition, set-attribute action, staff-task action,
   end) are made due and `automation.advance` tasks sent; nodes run per second until all are
   completed. Both rates are measured on the same worker and broker, with the executions of
   step 1 still in flight.
3. Trigger to first action: a producer inserts `--rate` tracked events per second (each a new
   customer) for `--seconds`; one consumer process loops the worker's task bodies (triggers,
   in one process, advance in the others) with 20 ms pauses when idle (a worker fed by beat at
   a 2 s interval adds up to 2 s); `--workers` processes in all (at least 2), the advancing
   ones in parallel (SKIP LOCKED). Latency = the first action's insert time (clock_timestamp)
   minus the event's insert time.

    python bench/bench_automation.py [--inflight 100000] [--executions 4000] [--noops 4000]
                                     [--rate 500] [--seconds 10] [--cases inflight,steps,latency]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from cloud.workers.app import celery_app  # noqa: E402

BROKER = os.environ.get("MALLPULSE_BENCH_BROKER", "redis://127.0.0.1:6379/1")


@celery_app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    """The baseline: a task that does nothing."""


STEPS_WF = {
    "trigger": {"kind": "api"},
    "nodes": [
        {"id": "start", "type": "entry", "next": "c"},
        {"id": "c", "type": "condition", "yes": "a1", "no": "a1",
         "condition": {"kind": "attribute", "attribute": "tier", "op": "eq", "value": "gold"}},
        {"id": "a1", "type": "action", "next": "a2",
         "action": {"kind": "set_attribute", "attribute": "seen", "value": True}},
        {"id": "a2", "type": "action", "next": "e", "action": {"kind": "staff_task", "title": "x"}},
        {"id": "e", "type": "end"},
    ],
}  # fmt: skip
NODES_PER_EXECUTION = 5
WAIT_WF = {
    "trigger": {"kind": "api"},
    "nodes": [{"id": "start", "type": "entry", "next": "w"},
              {"id": "w", "type": "wait", "seconds": 86400, "next": None}],
}  # fmt: skip
EVENT_WF = {
    "trigger": {"kind": "event", "event": "bench_signup"},
    "nodes": [{"id": "start", "type": "entry", "next": "a"},
              {"id": "a", "type": "action", "next": None,
               "action": {"kind": "staff_task", "title": "welcome"}}],
}  # fmt: skip


def _workflow(conn: psycopg.Connection[Any], raw: dict[str, Any], name: str) -> int:
    from cloud.crm.automation import service
    from cloud.crm.automation.definition import Definition

    with conn.transaction():
        wf = service.create(conn, name=name, definition=Definition.model_validate(raw), actor="b")
        service.set_status(conn, wf.id, "active")
    return wf.id


def _profiles(conn: psycopg.Connection[Any], n: int) -> tuple[int, int]:
    row = conn.execute(
        "WITH x AS (INSERT INTO crm_profiles (attributes) SELECT %s FROM generate_series(1, %s)"
        " RETURNING id) SELECT min(id), max(id) FROM x",
        (Jsonb({"tier": "gold"}), n),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _bulk_enrol(conn: psycopg.Connection[Any], wid: int, lo: int, hi: int, due: str) -> None:
    """Executions at the entry, due at `due` (what enrolment writes, in one statement)."""
    conn.execute(
        "WITH x AS (INSERT INTO automation_executions (workflow_id, version, profile_id, status,"
        " node_id, visits, enrolled_at, updated_at) SELECT %s, 1, p, 'running', 'start',"
        " '{\"start\": 1}'::jsonb, now(), now() FROM generate_series(%s::bigint, %s::bigint) p"
        " RETURNING id) INSERT INTO automation_due (execution_id, due_at)"
        f" SELECT id, {due} FROM x",
        (wid, lo, hi),
    )


def in_flight(url: str, n: int) -> None:
    """Step 1: executions waiting at a day-long timer, written as enrolment and the first step
    leave them (bulk, one statement)."""
    from cloud.crm.automation import repository as repo

    with psycopg.connect(url, autocommit=True) as conn:
        wid = _workflow(conn, WAIT_WF, "bench-wait")
        lo, hi = _profiles(conn, n)
        t = time.perf_counter()
        conn.execute(
            "WITH x AS (INSERT INTO automation_executions (workflow_id, version, profile_id,"
            " status, node_id, visits, wait_since, wait_until, enrolled_at, updated_at)"
            " SELECT %s, 1, p, 'waiting', 'w', '{\"start\": 1, \"w\": 1}'::jsonb, now(),"
            " now() + interval '1 day', now(), now()"
            " FROM generate_series(%s::bigint, %s::bigint) p RETURNING id, wait_until)"
            " INSERT INTO automation_due (execution_id, due_at) SELECT id, wait_until FROM x",
            (wid, lo, hi),
        )
        load = time.perf_counter() - t
        live = conn.execute(
            "SELECT count(*) FROM automation_executions WHERE status = 'waiting'"
        ).fetchone()
        conn.execute(
            "UPDATE automation_due SET due_at = now() - interval '1 s'"
            " WHERE execution_id IN (SELECT execution_id FROM automation_due LIMIT 200)"
        )
        conn.execute("ANALYZE automation_due")
        t = time.perf_counter()
        with conn.transaction(force_rollback=True):
            now = datetime.now(UTC)
            got = repo.claim_due(conn, now=now, lease_until=now, limit=200)
        claim = time.perf_counter() - t
        conn.execute("UPDATE automation_due SET due_at = now() + interval '1 day'")
    assert live is not None
    print(f"in flight: {live[0]} executions waiting (bulk written in {load:.1f} s)")
    print(f"  claim of {len(got)} due among them (SKIP LOCKED): {claim * 1000:.1f} ms")


def _worker(queue: str, url: str) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLPULSE_")}
    env = {**clean, "MALLPULSE_DATABASE_URL": url, "MALLPULSE_CELERY_BROKER_URL": BROKER,
           "PYTHONPATH": f"{REPO}/bench:{REPO}"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "cloud.workers.app", "worker", "--pool=solo",
         "-Q", queue, "-n", f"{queue}@%h", "-I", "bench_automation", "--without-heartbeat",
         "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def steps(url: str, executions: int, noops: int) -> None:
    """Step 2."""
    import redis
    from celery import Celery

    r = redis.Redis.from_url(BROKER)
    app = Celery("bench", broker=BROKER)
    queue = f"mp-bench-auto-{uuid.uuid4().hex[:8]}"
    for _ in range(noops):
        app.send_task("bench.noop", queue=queue)
    worker = _worker(queue, url)
    try:
        while r.llen(queue) == noops:
            time.sleep(0.005)
        t0 = time.perf_counter()
        while r.llen(queue) > 0:
            time.sleep(0.005)
        noop_rate = noops / (time.perf_counter() - t0)
        with psycopg.connect(url, autocommit=True) as conn:
            wid = _workflow(conn, STEPS_WF, "bench-steps")
            lo, hi = _profiles(conn, executions)
            _bulk_enrol(conn, wid, lo, hi, "now()")
            t0 = time.perf_counter()
            for _ in range(math.ceil(executions / 200) + 1):
                app.send_task("automation.advance", queue=queue)
            q = (
                "SELECT count(*) FROM automation_executions WHERE workflow_id = %s"
                " AND status = 'completed'"
            )
            while True:
                row = conn.execute(q, (wid,)).fetchone()
                if row is not None and row[0] >= executions:
                    break
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        r.delete(queue)
    rate = executions * NODES_PER_EXECUTION / elapsed
    print(
        f"one worker: bare no-op tasks {noop_rate:.0f}/s; automation {rate:.0f} nodes/s"
        f" ({executions} executions x {NODES_PER_EXECUTION} nodes in {elapsed:.1f} s)"
    )
    print(f"  ratio to the no-op task: {rate / noop_rate:.2f} (aim >= 0.3)")


def _consume(url: str, stop_at: float, triggers: bool) -> None:
    """One worker process: the trigger task's body (`triggers`), or the advance task's."""
    from cloud.core.settings import Settings
    from cloud.crm.automation.tasks import run_advance, run_triggers

    settings = Settings(database_url=url)
    while time.monotonic() < stop_at:
        n = run_triggers(settings) if triggers else run_advance(settings)
        if not n:
            time.sleep(0.02)


def latency(url: str, rate: int, seconds: float, workers: int) -> None:
    """Step 3."""
    total = int(rate * seconds)
    with psycopg.connect(url, autocommit=True) as conn:
        wid = _workflow(conn, EVENT_WF, "bench-events")
        lo, _ = _profiles(conn, total)
        conn.execute("ALTER TABLE automation_actions ADD COLUMN bench_at timestamptz"
                     " DEFAULT clock_timestamp()")  # fmt: skip
        conn.execute(
            "ALTER TABLE crm_events ALTER COLUMN received_at SET DEFAULT clock_timestamp()"
        )
        stop = time.monotonic() + seconds + 30
        consumers = [
            mp.get_context("spawn").Process(target=_consume, args=(url, stop, i == 0))
            for i in range(workers)
        ]
        for c in consumers:
            c.start()
        time.sleep(3.0)  # the consumer's imports
        tick, sent, t0 = 0.02, 0, time.monotonic()
        while sent < total:
            due = min(total, int((time.monotonic() - t0) * rate) + 1)
            if due > sent:
                conn.execute(
                    "INSERT INTO crm_events (occurred_at, source_id, message_id, type, event,"
                    " profile_id) SELECT now(), 'bench', gen_random_uuid()::text, 'track',"
                    " 'bench_signup', p FROM generate_series(%s::bigint, %s::bigint) p",
                    (lo + sent, lo + due - 1),
                )
                sent = due
            time.sleep(tick)
        achieved = sent / (time.monotonic() - t0)
        q = "SELECT count(*) FROM automation_executions WHERE workflow_id = %s"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = conn.execute(
                "SELECT count(*) FROM automation_actions a JOIN automation_executions e"
                " ON e.id = a.execution_id WHERE e.workflow_id = %s",
                (wid,),
            ).fetchone()
            if done is not None and done[0] >= total:
                break
            time.sleep(0.2)
        for c in consumers:
            c.terminate()
            c.join()
        row = conn.execute(
            "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY d),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY d), max(d) FROM ("
            " SELECT extract(epoch FROM a.bench_at - ev.received_at) d"
            " FROM automation_actions a JOIN automation_executions e ON e.id = a.execution_id"
            " JOIN crm_events ev ON ev.profile_id = e.profile_id AND ev.event = 'bench_signup'"
            " WHERE e.workflow_id = %s) x",
            (wid,),
        ).fetchone()
        entered = conn.execute(q, (wid,)).fetchone()
    assert row is not None and entered is not None
    print(
        f"trigger -> first action ({workers} worker processes, one reads the triggers):"
        f" {total} events at {achieved:.0f}/s (asked {rate}/s),"
        f" {entered[0]} enrolled, {row[0]} first actions"
    )
    print(
        f"  p50 {row[1] * 1000:.0f} ms, p99 {row[2] * 1000:.0f} ms, max {row[3] * 1000:.0f} ms"
        " (aim p99 < 2 s)"
    )


def main(argv: list[str] | None = None) -> None:
    """Create a scratch database, run the three cases, print figures, drop it."""
    from cloud.db.migrate import migrate

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--inflight", type=int, default=100_000)
    parser.add_argument("--executions", type=int, default=4000)
    parser.add_argument("--noops", type=int, default=4000)
    parser.add_argument("--rate", type=int, default=500, help="Trigger events per second.")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="Latency: worker processes.")
    parser.add_argument("--cases", default="inflight,steps,latency", help="Which to run.")
    args = parser.parse_args(argv)
    admin = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"mp_bench_automation_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.rpartition("/")[0] + "/" + name
    la = os.getloadavg()
    print(f"load average {la[0]:.2f} {la[1]:.2f}, {os.cpu_count()} CPUs")
    try:
        migrate(url)
        cases = set(args.cases.split(","))
        if "inflight" in cases:
            in_flight(url, args.inflight)
        if "steps" in cases:
            steps(url, args.executions, args.noops)
        if "latency" in cases:
            latency(url, args.rate, args.seconds, args.workers)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"load average after {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")


if __name__ == "__main__":
    main()
