"""The domain-event outbox: `emit` in the writer's transaction, `read_after` by id watermark.

A feature that changes something others care about (segment entered, purchase recorded...)
calls `emit` inside the transaction of the change, so the event exists exactly when the change
does. Readers keep a watermark per consumer (`load_cursor` / `save_cursor`, saved in the same
transaction as their own effects) and read with `read_after`.

Identity ids are handed out before commit: a reader that sees ids 7 and 9 may find 8 committed a
moment later. `committed_after` therefore never moves a watermark past a missing id while another
transaction still writes to the table; with no writer left, what is missing rolled back and is
passed. The churn consumer (cloud/ml/churn/consumer.py) reads the CRM's tables the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb
from pydantic import JsonValue

Conn = psycopg.Connection[Any]
R = TypeVar("R")

TABLE = "domain_events"


@dataclass(frozen=True)
class DomainEvent:
    """One committed domain event."""

    id: int
    topic: str
    subject: str
    payload: dict[str, JsonValue]
    occurred_at: datetime


def emit(conn: Conn, *, topic: str, subject: str, payload: dict[str, JsonValue]) -> int:
    """Insert one event in the caller's transaction; returns its id."""
    row = conn.execute(
        "INSERT INTO domain_events (topic, subject, payload) VALUES (%s, %s, %s) RETURNING id",
        (topic, subject, Jsonb(payload)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def writers_open(conn: Conn, table: str) -> bool:
    """Whether another transaction holds a write lock on `table` now (it may still commit a row
    whose id is below ids already visible); False for a table that does not exist."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = to_regclass(%s)"
        " AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid())",
        (table,),
    ).fetchone()
    return bool(row and row[0])


def committed_after(
    conn: Conn, table: str, fetch: Callable[[int], list[R]], row_id: Callable[[R], int], after: int
) -> tuple[list[R], bool]:
    """Rows of `table` past `after` (in id order) that a watermark may pass for good, and whether
    a missing id held the read back (see the module docstring)."""
    got = fetch(after)
    ids = [after] + [row_id(r) for r in got]
    gap = next((i for i in range(1, len(ids)) if ids[i] != ids[i - 1] + 1), None)
    if gap is None:
        return got, False
    if writers_open(conn, table):
        return got[: gap - 1], True
    top = ids[-1]
    return [r for r in fetch(after) if row_id(r) <= top], False


def _fetch(conn: Conn, topics: Sequence[str] | None, limit: int) -> Callable[[int], list[Any]]:
    def run(after: int) -> list[Any]:
        # Every id is read (topics are filtered in Python) so that a gap is seen as a gap and
        # not as another topic's event.
        return conn.execute(
            "SELECT id, topic, subject, payload, occurred_at FROM domain_events"
            " WHERE id > %s ORDER BY id LIMIT %s",
            (after, limit),
        ).fetchall()

    return run


def read_after(
    conn: Conn, *, watermark: int, topics: Sequence[str] | None = None, limit: int = 1000
) -> tuple[list[DomainEvent], int]:
    """Committed events after `watermark` of the given topics (all when None), and the new
    watermark: it never passes an id an open transaction may still commit."""
    rows, _ = committed_after(
        conn, TABLE, _fetch(conn, topics, limit), lambda r: int(r[0]), watermark
    )
    new_mark = int(rows[-1][0]) if rows else watermark
    wanted = None if topics is None else set(topics)
    events = [
        DomainEvent(int(r[0]), r[1], r[2], r[3], r[4])
        for r in rows
        if wanted is None or r[1] in wanted
    ]
    return events, new_mark


def load_cursor(conn: Conn, consumer: str, *, lock: bool = False) -> int:
    """The consumer's watermark (0 before its first save); `lock` holds its row until commit."""
    conn.execute(
        "INSERT INTO domain_event_cursors (consumer) VALUES (%s) ON CONFLICT DO NOTHING",
        (consumer,),
    )
    sql = "SELECT watermark FROM domain_event_cursors WHERE consumer = %s"
    row = conn.execute(sql + (" FOR UPDATE" if lock else ""), (consumer,)).fetchone()
    assert row is not None
    return int(row[0])


def save_cursor(conn: Conn, consumer: str, watermark: int) -> None:
    """Store the consumer's watermark (call it in the transaction of the consumer's effects)."""
    conn.execute(
        "INSERT INTO domain_event_cursors (consumer, watermark) VALUES (%s, %s)"
        " ON CONFLICT (consumer) DO UPDATE SET watermark = EXCLUDED.watermark, updated_at = now()",
        (consumer, watermark),
    )
