"""Benchmark: N live SSE clients of one store on one API process, hub versus per-client LISTEN.

In one run, on a private database, the real API (`create_app`, uvicorn) runs as a separate
process. For each N (default 100, 500, 1000) N clients open /v1/stores/{id}/footfall/stream
(the current design: one LISTEN connection per process, the hub) and the same N open a route
that serves the previous design (one LISTEN connection per client, code kept below as the
baseline). With every client connected, the bench counts the database's connections in
pg_stat_activity, then commits --events events (INSERT + NOTIFY, as ingest does) and measures,
for every client and event, commit -> event received. The baseline needs one connection per
client, so it runs only at the --baseline sizes, and only while they leave at least --spare
connections of PostgreSQL's max_connections free (the server may be shared: running it out of
connections fails everyone else's work too).

    python bench/bench_sse_fanout.py [--clients 100,500,1000] [--baseline 10,40] [--events 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2 as httpx
import psycopg
from bench_ingest_support import REPO, bench_database, free_port, wait_port

SECRET = "bench-secret-6419141c349984bebf288ebe8004b997d45210a7f05ca398"
STORE = "fanout-1"


def serve(url: str, port: int) -> None:
    """The API with one extra route serving the previous per-client LISTEN stream."""
    import uvicorn
    from sse_starlette import EventSourceResponse, ServerSentEvent
    from starlette.concurrency import run_in_threadpool

    from cloud.api.app import create_app
    from cloud.core.settings import Settings
    from cloud.db.repositories import footfall as repo
    from cloud.db.repositories.telemetry import NOTIFY_CHANNEL

    settings = Settings(database_url=url, jwt_secret=SECRET, db_pool_max=10, log_level="ERROR")
    app = create_app(settings)

    async def per_client(store_id: str, after: int) -> AsyncIterator[ServerSentEvent]:
        """The design before the hub: each stream LISTENs on a connection of its own."""
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                yield ServerSentEvent(comment="connected", retry=2000)
                while True:
                    pool = app.state.pool
                    rows = await run_in_threadpool(_fetch, pool, repo, store_id, after)
                    for event_id, body in rows:
                        after = event_id
                        yield ServerSentEvent(data=json.dumps(body), event="footfall",
                                              id=str(event_id))  # fmt: skip
                    async for note in conn.notifies(timeout=5.0):
                        if note.payload.partition(":")[0] == store_id:
                            break
        except psycopg.OperationalError:
            return  # e.g. too many clients: the stream ends, the client counts a failure

    @app.get("/bench/per-client/{store_id}")
    async def old(store_id: str) -> EventSourceResponse:
        after = await run_in_threadpool(_last, app.state.pool, repo, store_id)
        return EventSourceResponse(per_client(store_id, after), ping=15)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", backlog=4096)


def _fetch(pool: Any, repo: Any, store_id: str, after: int) -> list[tuple[int, Any]]:
    with pool.connection() as conn:
        return list(repo.events_after(conn, store_id, after))


def _last(pool: Any, repo: Any, store_id: str) -> int:
    with pool.connection() as conn:
        return int(repo.last_event_id(conn, store_id))


class Client:
    """One SSE reader: connected or failed, and the latency of each event it received."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.done = asyncio.Event()
        self.failed = False
        self.latencies: list[float] = []

    async def run(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        """Read the stream until cancelled (or it ends: a failure when before 'connected')."""
        try:
            async with http.stream("GET", url, headers=headers) as res:
                async for line in res.aiter_lines():
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("data:"):
                        body = json.loads(line[5:])
                        self.latencies.append(time.time() - body["t"])
        except (httpx.HTTPError, OSError):
            pass
        finally:
            self.failed = not self.connected.is_set()
            self.connected.set()
            self.done.set()


def connections(url: str) -> int:
    """Connections to the bench database, this measuring one excluded."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def publish(url: str, k: int) -> None:
    """Commit one live event of the store (INSERT + NOTIFY in one transaction, as ingest)."""
    from cloud.db.repositories.telemetry import publish_events

    with psycopg.connect(url) as conn:
        publish_events(conn, {STORE: {"t": time.time(), "k": k}})


async def measure(base: str, path: str, url: str, n: int, events: int) -> dict[str, Any]:
    """Open n clients on `path`, count connections, publish events, collect latencies."""
    from cloud.core.security import Role, issue_token
    from cloud.core.settings import Settings

    token = issue_token(Settings(database_url=url, jwt_secret=SECRET), subject="bench",
                        role=Role.STORE_MANAGER, store_ids={STORE})  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(120.0, connect=60.0, pool=120.0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as http:
        clients = [Client() for _ in range(n)]
        tasks = [asyncio.create_task(c.run(http, path, headers)) for c in clients]
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 300)
        open_s = time.perf_counter() - started
        alive = [c for c in clients if not c.failed]
        used = await asyncio.to_thread(connections, url)
        for k in range(events):
            await asyncio.to_thread(publish, url, k)
            await asyncio.sleep(0.5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(len(c.latencies) < events for c in alive):
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(x for c in alive for x in c.latencies)
    return {
        "clients": n, "connected": len(alive), "failed": n - len(alive),
        "pg_connections": used, "open_s": open_s,
        "received": len(lat), "expected": len(alive) * events,
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
    }  # fmt: skip


def _row(design: str, r: dict[str, Any]) -> str:
    return (
        f"| {design} | {r['clients']} | {r['connected']} | {r['failed']} | {r['pg_connections']}"
        f" | {r['received']}/{r['expected']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
    )


def main() -> None:
    """Run the comparison and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", default="100,500,1000", help="Comma-separated N.")
    parser.add_argument("--events", type=int, default=5, help="Events per N and design.")
    parser.add_argument("--baseline", default="10,40", help="N for the per-client baseline.")
    parser.add_argument("--spare", type=int, default=40, help="Connections the baseline leaves.")
    parser.add_argument("--serve", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    with bench_database() as url:
        from cloud.db.repositories.devices import create_store

        with psycopg.connect(url) as conn:
            create_store(conn, store_id=STORE, name="Fan-out", timezone="UTC")
        port = free_port()
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'bench'}"}
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", url, str(port)], cwd=REPO, env=env
        )
        try:
            wait_port(port, 60)
            base = f"http://127.0.0.1:{port}"
            print(f"max_connections = {_max_connections(url)}; idle connections = "
                  f"{connections(url)}")  # fmt: skip
            print("| design | clients | connected | failed | PG connections | events | p50 ms"
                  " | p99 ms |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
            hub_sizes = [int(x) for x in args.clients.split(",")]
            old_sizes = [int(x) for x in args.baseline.split(",") if x]
            for n in sorted(set(hub_sizes) | set(old_sizes)):
                if n in hub_sizes:
                    hub = asyncio.run(measure(base, f"/v1/stores/{STORE}/footfall/stream", url,
                                              n, args.events))  # fmt: skip
                    print(_row("hub (one LISTEN per process)", hub), flush=True)
                    time.sleep(2.0)  # let the server close the streams
                if n in old_sizes and n + args.spare <= _free_slots(url):
                    old = asyncio.run(measure(base, f"/bench/per-client/{STORE}", url, n,
                                              args.events))  # fmt: skip
                    print(_row("per-client LISTEN (before)", old), flush=True)
                    time.sleep(2.0)
                elif n in old_sizes:
                    print(f"| per-client LISTEN (before) | {n} | skipped: needs {n} connections,"
                          f" {_free_slots(url)} free | | | | | |", flush=True)  # fmt: skip
        finally:
            server.terminate()
            server.wait(30)


def _free_slots(url: str) -> int:
    """Connections PostgreSQL can still accept (max_connections minus those in use)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
        ).fetchone()
    return int(row[0]) if row else 0


def _max_connections(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
    return str(row[0]) if row else "?"


if __name__ == "__main__":
    main()
