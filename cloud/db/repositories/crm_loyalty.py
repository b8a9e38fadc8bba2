"""SQL for loyalty accounts, the points ledger, lots, tiers, rewards and idempotency keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def claim_idempotency_key(conn: Conn, scope: str, key: str, request_hash: str) -> bool:
    """Claim a key; False when it exists (waits for a concurrent holder to finish first)."""
    row = conn.execute(
        "INSERT INTO crm_idempotency (scope, key, request_hash) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        (scope, key, request_hash),
    ).fetchone()
    return row is not None


def get_idempotency_key(conn: Conn, scope: str, key: str) -> tuple[str, Any] | None:
    """(request hash, stored response) of a claimed key."""
    row = conn.execute(
        "SELECT request_hash, response FROM crm_idempotency WHERE scope = %s AND key = %s",
        (scope, key),
    ).fetchone()
    return (row[0], row[1]) if row else None


def store_idempotent_response(conn: Conn, scope: str, key: str, response: Any) -> None:
    """Keep the response of a claimed key for retries."""
    conn.execute(
        "UPDATE crm_idempotency SET response = %s WHERE scope = %s AND key = %s",
        (Jsonb(response), scope, key),
    )


def insert_account(
    conn: Conn, *, profile_id: int, member_number: str, tier: str, period_end: datetime
) -> int:
    """Open an account; returns its id."""
    row = conn.execute(
        "INSERT INTO loyalty_accounts (profile_id, member_number, tier, tier_period_end)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (profile_id, member_number, tier, period_end),
    ).fetchone()
    assert row is not None
    return int(row[0])


def member_number_taken(conn: Conn, member_number: str) -> bool:
    """True when an account already has this number."""
    return (
        conn.execute(
            "SELECT 1 FROM loyalty_accounts WHERE member_number = %s", (member_number,)
        ).fetchone()
        is not None
    )


def lock_accounts(conn: Conn, account_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Lock account rows (in id order, so two lockers never deadlock) and return them."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM loyalty_accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (sorted(set(account_ids)),),
        ).fetchall()
    return {int(r["id"]): r for r in rows}


def get_account(conn: Conn, account_id: int) -> dict[str, Any] | None:
    """An account row."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM loyalty_accounts WHERE id = %s", (account_id,)).fetchone()


def accounts_of_profiles(conn: Conn, profile_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Accounts held by any of the profiles, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM loyalty_accounts WHERE profile_id = ANY(%s) ORDER BY id",
            (list(profile_ids),),
        ).fetchall()


def open_lots(conn: Conn, account_id: int, now: datetime) -> list[tuple[int, int, datetime]]:
    """(lot id, remaining, expires_at) of unexpired lots with points, oldest-expiring first."""
    rows = conn.execute(
        "SELECT id, remaining, expires_at FROM loyalty_lots WHERE account_id = %s"
        " AND remaining > 0 AND expires_at > %s ORDER BY expires_at, id",
        (account_id, now),
    ).fetchall()
    return [(int(r[0]), int(r[1]), r[2]) for r in rows]


def lots_to_cover(
    conn: Conn, account_id: int, now: datetime, points: int
) -> tuple[int, list[tuple[int, int, datetime]]]:
    """(available points, the oldest-expiring unexpired lots needed to cover `points`)."""
    rows = conn.execute(
        "SELECT id, remaining, expires_at, total FROM (SELECT id, remaining, expires_at,"
        " sum(remaining) OVER (ORDER BY expires_at, id) AS running,"
        " sum(remaining) OVER () AS total FROM loyalty_lots"
        " WHERE account_id = %s AND remaining > 0 AND expires_at > %s) t"
        " WHERE running - remaining < %s ORDER BY expires_at, id",
        (account_id, now, points),
    ).fetchall()
    available = int(rows[0][3]) if rows else 0
    return available, [(int(r[0]), int(r[1]), r[2]) for r in rows]


def due_lots(conn: Conn, account_id: int, now: datetime) -> list[tuple[int, int, datetime]]:
    """Lots whose expiry has passed but that still hold points."""
    rows = conn.execute(
        "SELECT id, remaining, expires_at FROM loyalty_lots WHERE account_id = %s"
        " AND remaining > 0 AND expires_at <= %s ORDER BY expires_at, id",
        (account_id, now),
    ).fetchall()
    return [(int(r[0]), int(r[1]), r[2]) for r in rows]


def accounts_with_due_lots(conn: Conn, now: datetime, limit: int) -> list[int]:
    """Accounts that have expired lots still holding points."""
    rows = conn.execute(
        "SELECT DISTINCT account_id FROM loyalty_lots WHERE remaining > 0 AND expires_at <= %s"
        " ORDER BY account_id LIMIT %s",
        (now, limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


def insert_entry(
    conn: Conn,
    *,
    account_id: int,
    kind: str,
    points: int,
    occurred_at: datetime,
    qualifying: int = 0,
    transaction_id: int | None = None,
    reference: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append a ledger entry; returns its id."""
    row = conn.execute(
        "INSERT INTO loyalty_entries (account_id, kind, points, qualifying, transaction_id,"
        " reference, detail, occurred_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            account_id,
            kind,
            points,
            qualifying,
            transaction_id,
            reference,
            Jsonb(detail or {}),
            occurred_at,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def insert_lot(
    conn: Conn, *, account_id: int, entry_id: int, points: int, expires_at: datetime
) -> int:
    """Create a lot of fresh points."""
    row = conn.execute(
        "INSERT INTO loyalty_lots (account_id, entry_id, points, remaining, expires_at)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (account_id, entry_id, points, points, expires_at),
    ).fetchone()
    assert row is not None
    return int(row[0])


def consume(conn: Conn, entry_id: int, takes: Sequence[tuple[int, int]]) -> None:
    """Record that `entry_id` took (lot id, points) from lots and lower their remaining."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO loyalty_consumptions (entry_id, lot_id, points) VALUES (%s, %s, %s)",
            [(entry_id, lot, pts) for lot, pts in takes],
        )
        cur.executemany(
            "UPDATE loyalty_lots SET remaining = remaining - %s WHERE id = %s",
            [(pts, lot) for lot, pts in takes],
        )


def consumptions_of_entry(conn: Conn, entry_id: int) -> list[tuple[int, int, datetime]]:
    """(lot id, points, lot expiry) an entry consumed."""
    rows = conn.execute(
        "SELECT c.lot_id, c.points, l.expires_at FROM loyalty_consumptions c"
        " JOIN loyalty_lots l ON l.id = c.lot_id WHERE c.entry_id = %s ORDER BY l.expires_at",
        (entry_id,),
    ).fetchall()
    return [(int(r[0]), int(r[1]), r[2]) for r in rows]


def earn_entries_of_transaction(conn: Conn, transaction_id: int) -> list[dict[str, Any]]:
    """Earn entries credited for a transaction, with their lot."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT e.id, e.account_id, e.points, e.qualifying, l.id AS lot_id"
            " FROM loyalty_entries e LEFT JOIN loyalty_lots l ON l.entry_id = e.id"
            " WHERE e.transaction_id = %s AND e.kind = 'earn' ORDER BY e.id",
            (transaction_id,),
        ).fetchall()


def points_earned_for_transaction(conn: Conn, transaction_id: int) -> int:
    """Points credited for a transaction."""
    row = conn.execute(
        "SELECT coalesce(sum(points), 0) FROM loyalty_entries"
        " WHERE transaction_id = %s AND kind = 'earn'",
        (transaction_id,),
    ).fetchone()
    return int(row[0]) if row else 0


def balance(conn: Conn, account_id: int, now: datetime) -> int:
    """Unexpired points an account holds."""
    row = conn.execute(
        "SELECT coalesce(sum(remaining), 0) FROM loyalty_lots"
        " WHERE account_id = %s AND remaining > 0 AND expires_at > %s",
        (account_id, now),
    ).fetchone()
    return int(row[0]) if row else 0


def qualifying_since(conn: Conn, account_id: int, since: datetime, until: datetime) -> int:
    """Qualifying points (or spend) credited in (since, until]."""
    row = conn.execute(
        "SELECT coalesce(sum(qualifying), 0) FROM loyalty_entries"
        " WHERE account_id = %s AND occurred_at > %s AND occurred_at <= %s",
        (account_id, since, until),
    ).fetchone()
    return int(row[0]) if row else 0


def set_tier(conn: Conn, account_id: int, tier: str, period_end: datetime) -> None:
    """Change an account's tier and its review date."""
    conn.execute(
        "UPDATE loyalty_accounts SET tier = %s, tier_period_end = %s WHERE id = %s",
        (tier, period_end, account_id),
    )


def insert_tier_change(
    conn: Conn,
    *,
    account_id: int,
    frm: str | None,
    to: str,
    reason: str,
    qualifying: int,
    when: datetime,
) -> None:
    """Append to an account's tier history."""
    conn.execute(
        "INSERT INTO loyalty_tier_history (account_id, from_tier, to_tier, reason, qualifying,"
        " occurred_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (account_id, frm, to, reason, qualifying, when),
    )


def tier_history(conn: Conn, account_id: int) -> list[dict[str, Any]]:
    """An account's tier changes, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT from_tier, to_tier, reason, qualifying, occurred_at FROM loyalty_tier_history"
            " WHERE account_id = %s ORDER BY id",
            (account_id,),
        ).fetchall()


def accounts_due_for_review(conn: Conn, now: datetime, limit: int) -> list[int]:
    """Accounts whose tier period has ended."""
    rows = conn.execute(
        "SELECT id FROM loyalty_accounts WHERE tier_period_end <= %s AND status = 'active'"
        " ORDER BY tier_period_end LIMIT %s",
        (now, limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


def entries(conn: Conn, account_id: int, limit: int) -> list[dict[str, Any]]:
    """An account's latest ledger entries."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, kind, points, qualifying, transaction_id, reference, detail, occurred_at"
            " FROM loyalty_entries WHERE account_id = %s ORDER BY id DESC LIMIT %s",
            (account_id, limit),
        ).fetchall()


def sales_before(conn: Conn, profile_ids: Sequence[int], transaction_id: int) -> int:
    """Non-reversed sales of a person recorded before a transaction."""
    row = conn.execute(
        "SELECT count(*) FROM crm_transactions WHERE profile_id = ANY(%s) AND id < %s"
        " AND kind = 'sale' AND reversed_at IS NULL",
        (list(profile_ids), transaction_id),
    ).fetchone()
    return int(row[0]) if row else 0
