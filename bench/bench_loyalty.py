"""Loyalty ledger throughput with 16 concurrent clients, against bare INSERTs of ledger rows.

Each client is a thread with its own PostgreSQL connection and commits every operation (as the
API does: one request, one transaction). An operation is an earn or a burn (alternating) through
the real service with an idempotency key (`run_once` + row lock + lots + entries).

1. hot account: all 16 clients on one account (the row lock serialises them);
2. many accounts: each client on its own account;
3. baseline: the same clients doing a bare `INSERT INTO loyalty_entries` per transaction.

    python bench/bench_loyalty.py [--clients 16] [--ops 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from cloud.crm.idempotency import run_once  # noqa: E402
from cloud.crm.identity.service import ingest_record  # noqa: E402
from cloud.crm.loyalty import ledger  # noqa: E402
from cloud.db.migrate import migrate  # noqa: E402

Op = Callable[[psycopg.Connection[Any], int, int], None]


def _account(url: str, points: int) -> int:
    with psycopg.connect(url) as conn:
        who = ingest_record(
            conn, source="bench", identifiers={"email": f"{uuid.uuid4().hex}@bench.example"}
        )
        account = int(ledger.open_account(conn, profile_id=who.profile_id)["id"])
        if points:
            ledger.earn(conn, account_id=account, points=points, reason="funding")
    return account


def ledger_op(conn: psycopg.Connection[Any], account: int, i: int) -> None:
    """One earn (even i) or burn (odd i) of 10 points through the idempotent service."""
    key = uuid.uuid4().hex
    if i % 2 == 0:
        run_once(
            conn,
            scope=f"earn:{account}",
            key=key,
            request={"p": 10},
            action=lambda: ledger.earn(conn, account_id=account, points=10, reason="b"),
        )
    else:
        run_once(
            conn,
            scope=f"burn:{account}",
            key=key,
            request={"p": 10},
            action=lambda: ledger.burn(conn, account_id=account, points=10),
        )
    conn.commit()


def bare_insert(conn: psycopg.Connection[Any], account: int, i: int) -> None:
    """Baseline: one ledger row, one transaction."""
    conn.execute(
        "INSERT INTO loyalty_entries (account_id, kind, points, occurred_at)"
        " VALUES (%s, 'earn', 10, now())",
        (account,),
    )
    conn.commit()


def run(url: str, accounts: list[int], op: Op, ops: int) -> float:
    """Operations per second of len(accounts) clients doing `ops` operations each."""
    barrier = threading.Barrier(len(accounts) + 1)
    errors: list[BaseException] = []

    def client(account: int) -> None:
        try:
            with psycopg.connect(url) as conn:
                barrier.wait()
                for i in range(ops):
                    op(conn, account, i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(a,)) for a in accounts]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return len(accounts) * ops / secs


def main(argv: list[str] | None = None) -> None:
    """Create a scratch database, run the three cases, print figures and ratios, drop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="Concurrent clients.")
    parser.add_argument("--ops", type=int, default=200, help="Operations per client.")
    args = parser.parse_args(argv)
    admin = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"mp_bench_loyalty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.rpartition("/")[0] + "/" + name
    try:
        migrate(url)
        hot = _account(url, 1_000_000)
        many = [_account(url, 1_000_000) for _ in range(args.clients)]
        print(f"{args.clients} clients x {args.ops} operations each", flush=True)
        base = run(url, many, bare_insert, args.ops)
        print(f"baseline bare INSERT:        {base:8.0f} ops/s", flush=True)
        hot_rate = run(url, [hot] * args.clients, ledger_op, args.ops)
        print(
            f"earn/burn, one hot account:  {hot_rate:8.0f} ops/s  ratio {hot_rate / base:.3f}",
            flush=True,
        )
        many_rate = run(url, many, ledger_op, args.ops)
        print(
            f"earn/burn, many accounts:    {many_rate:8.0f} ops/s  ratio {many_rate / base:.3f}",
            flush=True,
        )
        with psycopg.connect(url) as conn:
            lots = conn.execute("SELECT count(*) FROM loyalty_lots WHERE remaining < 0").fetchone()
        print(f"overdrawn lots after the run: {lots[0] if lots else 'n/a'}")
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
