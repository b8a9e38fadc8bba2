"""SQL of the append-only audit log (who did what sensitive thing, to how many rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def record(
    conn: Conn,
    *,
    actor: str,
    role: str,
    action: str,
    row_count: int | None,
    detail: dict[str, Any],
) -> tuple[int, datetime]:
    """Append an audit row; returns its id and time."""
    row = conn.execute(
        "INSERT INTO audit_log (actor, role, action, row_count, detail)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id, occurred_at",
        (actor, role, action, row_count, Jsonb(detail)),
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def recent(conn: Conn, action: str, limit: int = 100) -> list[dict[str, Any]]:
    """The latest audit rows of one action, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, actor, role, action, row_count, detail, occurred_at FROM audit_log"
            " WHERE action = %s ORDER BY id DESC LIMIT %s",
            (action, limit),
        ).fetchall()
