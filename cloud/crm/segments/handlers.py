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
from cloud.crm.segments.rules import depends_on
from cloud.crm.segments.service import Target, parse_rule, reconcile_many

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


def _read(conn: Conn, table: str, limit: int) -> tuple[list[repo.Change], bool]:
    name = f"{CONSUMER}:{table}"
    after = load_cursor(conn, name)
    rows, held = committed_after(
        conn,
        table,
        lambda a: repo.read_source(conn, table, after=a, limit=limit),
        lambda c: c.id,
        after,
    )
    if rows:
        save_cursor(conn, name, rows[-1].id)
    return rows, held


def process_batch(conn: Conn, *, limit: int = 5000, now: datetime | None = None) -> Batch:
    """Handle up to `limit` new rows per source in one transaction."""
    with conn.transaction():
        got = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"consumer:{CONSUMER}",)
        ).fetchone()
        if not got or not got[0]:
            return Batch(0, 0, 0, 0, busy=True)
        touched: dict[str, set[int]] = {}  # change topic -> profile ids
        read, held = 0, False
        for table in repo.SOURCES:
            rows, waits = _read(conn, table, limit)
            read, held = read + len(rows), held or waits
            for c in rows:
                if c.profile_id is not None:
                    for topic in c.topics:
                        touched.setdefault(topic, set()).add(c.profile_id)
        if not touched:
            return Batch(read, 0, 0, 0, busy=held)
        res = _reconcile_touched(conn, touched, now or datetime.now(UTC))
    if res.entered or res.exited:
        log.info(
            "segment membership updated",
            extra={
                "read": read,
                "persons": res.persons,
                "entered": res.entered,
                "exited": res.exited,
            },
        )
    return Batch(read, res.persons, res.entered, res.exited, busy=held)


def _reconcile_touched(conn: Conn, touched: dict[str, set[int]], at: datetime) -> Batch:
    """Reconcile each dynamic segment for the persons whose changes its rule reads (a change
    to something a rule does not read cannot change its value; time is the sweep's)."""
    every: set[int] = set().union(*touched.values())
    owner = repo.owners(conn, sorted(every))
    profiles = repo.profiles_by_person(conn, sorted(every | set(owner.values())))
    targets: list[Target] = []
    for sid, raw in repo.dynamic_segments(conn):
        rule = parse_rule(raw)
        ids = set(touched.get("*", ()))
        for topic in depends_on(rule):
            ids |= touched.get(topic, set())
        if not ids:
            continue
        persons = sorted(ids | {owner[i] for i in ids if i in owner})
        only = sorted({x for p in persons for x in profiles.get(p, [p])})
        targets.append(Target(sid, rule, persons, only))
    done = reconcile_many(conn, targets, now=at, reason="change")
    persons_seen = {p for t in targets for p in t.persons}
    entered, exited = sum(r.entered for r in done), sum(r.exited for r in done)
    return Batch(0, len(persons_seen), entered, exited)


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
