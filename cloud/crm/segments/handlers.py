"""Incremental membership: re-evaluate only the persons that new rows touched.

One batch is one transaction: read new crm_events, crm_transactions and crm_segment_changes
rows past this consumer's watermarks (never past an id an open transaction may still commit,
see cloud.core.domain_events.committed_after), find the persons those rows belong to (and
the live profile each is now), reconcile every dynamic segment for them only, and save the
watermarks with the membership changes and their domain events. A crash loses nothing: the
batch rolls back whole and is read again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.core.domain_events import committed_after, load_cursor, save_cursor
from cloud.crm.segments import repository as repo
from cloud.crm.segments.service import parse_rule, reconcile

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
CONSUMER = "segments"


@dataclass(frozen=True)
class Batch:
    """What one incremental batch did."""

    read: int
    persons: int
    entered: int
    exited: int
    busy: bool = False  # another consumer held the lock, or rows wait behind an open transaction


def _read(conn: Conn, table: str, limit: int) -> tuple[list[tuple[int, int | None]], bool]:
    name = f"{CONSUMER}:{table}"
    after = load_cursor(conn, name)
    rows, held = committed_after(
        conn,
        table,
        lambda a: repo.read_source(conn, table, after=a, limit=limit),
        lambda r: r[0],
        after,
    )
    if rows:
        save_cursor(conn, name, rows[-1][0])
    return rows, held


def process_batch(conn: Conn, *, limit: int = 5000, now: datetime | None = None) -> Batch:
    """Handle up to `limit` new rows per source in one transaction."""
    with conn.transaction():
        got = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"consumer:{CONSUMER}",)
        ).fetchone()
        if not got or not got[0]:
            return Batch(0, 0, 0, 0, busy=True)
        touched: set[int] = set()
        read, held = 0, False
        for table in repo.SOURCES:
            rows, waits = _read(conn, table, limit)
            read, held = read + len(rows), held or waits
            touched |= {pid for _, pid in rows if pid is not None}
        if not touched:
            return Batch(read, 0, 0, 0, busy=held)
        persons = repo.persons_of(conn, sorted(touched))
        at = now or datetime.now(UTC)
        entered = exited = 0
        for sid, raw in repo.dynamic_segments(conn):
            res = reconcile(conn, sid, parse_rule(raw), now=at, persons=persons, reason="change")
            entered, exited = entered + res.entered, exited + res.exited
    if entered or exited:
        log.info(
            "segment membership updated",
            extra={"read": read, "persons": len(persons), "entered": entered, "exited": exited},
        )
    return Batch(read, len(persons), entered, exited, busy=held)


def process_all(
    conn: Conn, *, limit: int = 5000, max_batches: int = 1000, now: datetime | None = None
) -> list[Batch]:
    """Batches until the sources are drained (or busy, or `max_batches`)."""
    out = []
    for _ in range(max_batches):
        res = process_batch(conn, limit=limit, now=now)
        out.append(res)
        if res.busy or res.read == 0:
            break
    return out
