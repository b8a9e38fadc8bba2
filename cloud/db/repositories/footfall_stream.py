"""SQL of the live footfall stream: events by id for the LISTEN hub, and who may still write."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]
TABLE = "footfall_events"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One live event; `body` is None when its store was not asked for."""

    id: int
    store_id: str
    body: Any


def events_after(conn: Conn, after: int, stores: Collection[str], limit: int) -> list[StreamEvent]:
    """Every store's events with id > `after`, oldest first; bodies only of `stores` (the ids of
    all are needed to see gaps)."""
    rows = conn.execute(
        "SELECT id, store_id, CASE WHEN store_id = ANY(%s) THEN body END FROM footfall_events"
        " WHERE id > %s ORDER BY id LIMIT %s",
        (list(stores), after, limit),
    ).fetchall()
    return [StreamEvent(int(r[0]), r[1], r[2]) for r in rows]


def store_events_between(
    conn: Conn, store_id: str, after: int, upto: int, limit: int
) -> list[StreamEvent]:
    """A store's events with `after` < id <= `upto`, oldest first."""
    rows = conn.execute(
        "SELECT id, store_id, body FROM footfall_events WHERE store_id = %s AND id > %s"
        " AND id <= %s ORDER BY id LIMIT %s",
        (store_id, after, upto, limit),
    ).fetchall()
    return [StreamEvent(int(r[0]), r[1], r[2]) for r in rows]


def newest_id(conn: Conn) -> int:
    """The highest event id visible now (0 when none)."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM footfall_events").fetchone()
    return int(row[0]) if row else 0


def open_writers(conn: Conn) -> frozenset[str]:
    """Virtual transaction ids of the other transactions that hold a write lock on the events
    table now: only these can still commit an id below the ones visible."""
    rows = conn.execute(
        "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE relation = to_regclass(%s)"
        " AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()",
        (TABLE,),
    ).fetchall()
    return frozenset(str(r[0]) for r in rows)


def any_alive(conn: Conn, vxids: Collection[str]) -> bool:
    """Whether any of these virtual transactions is still open."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'virtualxid'"
        " AND virtualtransaction = ANY(%s))",
        (list(vxids),),
    ).fetchone()
    return bool(row and row[0])
