"""SQL for the reward catalogue and redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

Conn = psycopg.Connection[Any]


def insert_reward(
    conn: Conn, *, code: str, name: str, cost_points: int, stock: int
) -> dict[str, Any]:
    """Add a reward."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO loyalty_rewards (code, name, cost_points, stock) VALUES (%s, %s, %s, %s)"
            " RETURNING id, code, name, cost_points, stock, active",
            (code, name, cost_points, stock),
        ).fetchone()
    assert row is not None
    return row


def reward_by_code(conn: Conn, code: str) -> dict[str, Any] | None:
    """A reward by its code."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM loyalty_rewards WHERE code = %s", (code,)).fetchone()


def list_rewards(conn: Conn) -> list[dict[str, Any]]:
    """The active catalogue."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, code, name, cost_points, stock, active FROM loyalty_rewards"
            " WHERE active ORDER BY id"
        ).fetchall()


def lock_reward(conn: Conn, reward_id: int) -> dict[str, Any] | None:
    """A reward row, locked."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM loyalty_rewards WHERE id = %s FOR UPDATE", (reward_id,)
        ).fetchone()


def change_stock(conn: Conn, reward_id: int, delta: int) -> None:
    """Add `delta` to a reward's stock."""
    conn.execute("UPDATE loyalty_rewards SET stock = stock + %s WHERE id = %s", (delta, reward_id))


def insert_redemption(
    conn: Conn,
    *,
    reward_id: int,
    account_id: int,
    points: int,
    burn_entry_id: int,
    when: datetime,
) -> dict[str, Any]:
    """Record a reservation."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO loyalty_redemptions (reward_id, account_id, points, status,"
            " burn_entry_id, created_at, updated_at) VALUES (%s, %s, %s, 'reserved', %s, %s, %s)"
            " RETURNING id, reward_id, account_id, points, status, created_at",
            (reward_id, account_id, points, burn_entry_id, when, when),
        ).fetchone()
    assert row is not None
    return row


def lock_redemption(conn: Conn, redemption_id: int) -> dict[str, Any] | None:
    """A redemption row, locked."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM loyalty_redemptions WHERE id = %s FOR UPDATE", (redemption_id,)
        ).fetchone()


def set_redemption_status(
    conn: Conn, redemption_id: int, status: str, when: datetime, refund_entry_id: int | None
) -> dict[str, Any]:
    """Move a redemption to a new status."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE loyalty_redemptions SET status = %s, updated_at = %s,"
            " refund_entry_id = coalesce(%s, refund_entry_id) WHERE id = %s"
            " RETURNING id, reward_id, account_id, points, status, created_at",
            (status, when, refund_entry_id, redemption_id),
        ).fetchone()
    assert row is not None
    return row
