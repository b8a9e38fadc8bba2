"""SQL for goodwill credits waiting for a second admin's approval."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

Conn = psycopg.Connection[Any]
_COLUMNS = (
    "id, account_id, points, reason, requested_by, requested_at, status, decided_by,"
    " decided_at, note, entry_id"
)


def insert(
    conn: Conn, *, account_id: int, points: int, reason: str, requested_by: str, when: datetime
) -> dict[str, Any]:
    """Record a pending credit."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO loyalty_point_approvals (account_id, points, reason, requested_by,"
            f" requested_at) VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (account_id, points, reason, requested_by, when),
        ).fetchone()
    assert row is not None
    return row


def lock(conn: Conn, approval_id: int) -> dict[str, Any] | None:
    """One approval, locked for its decision."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM loyalty_point_approvals WHERE id = %s FOR UPDATE",
            (approval_id,),
        ).fetchone()


def decide(
    conn: Conn,
    approval_id: int,
    *,
    status: str,
    decided_by: str,
    when: datetime,
    note: str | None,
    entry_id: int | None,
) -> dict[str, Any]:
    """Record the decision on a pending approval."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE loyalty_point_approvals SET status = %s, decided_by = %s, decided_at = %s,"
            f" note = %s, entry_id = %s WHERE id = %s RETURNING {_COLUMNS}",
            (status, decided_by, when, note, entry_id, approval_id),
        ).fetchone()
    assert row is not None
    return row


def listing(conn: Conn, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Approvals, oldest first, optionally of one status."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM loyalty_point_approvals"
            " WHERE %(status)s::text IS NULL OR status = %(status)s ORDER BY id LIMIT %(limit)s",
            {"status": status, "limit": limit},
        ).fetchall()
