"""SQL for touchpoints, POS transactions and lifecycle transitions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def store_exists(conn: Conn, store_id: str) -> bool:
    """True when the store is registered."""
    return conn.execute("SELECT 1 FROM stores WHERE id = %s", (store_id,)).fetchone() is not None


def insert_transaction(
    conn: Conn,
    *,
    profile_id: int,
    record_id: int,
    store_id: str,
    external_id: str,
    occurred_at: datetime,
    currency: str,
    total_amount: Decimal,
    kind: str,
) -> int | None:
    """Insert a transaction; None when (store_id, external_id) already exists."""
    row = conn.execute(
        "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id, occurred_at,"
        " currency, total_amount, kind) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (store_id, external_id) DO NOTHING RETURNING id",
        (profile_id, record_id, store_id, external_id, occurred_at, currency, total_amount, kind),
    ).fetchone()
    return int(row[0]) if row else None


def insert_items(conn: Conn, transaction_id: int, items: Sequence[tuple[Any, ...]]) -> None:
    """Insert (line_no, sku, category, quantity, unit_price, amount) rows."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm_transaction_items (transaction_id, line_no, sku, category, quantity,"
            " unit_price, amount) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(transaction_id, *item) for item in items],
        )


def find_transaction(conn: Conn, *, store_id: str, external_id: str) -> dict[str, Any] | None:
    """A transaction by its till receipt id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM crm_transactions WHERE store_id = %s AND external_id = %s",
            (store_id, external_id),
        ).fetchone()


def get_transaction(
    conn: Conn, transaction_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """A transaction by id (optionally locked)."""
    sql = "SELECT * FROM crm_transactions WHERE id = %s" + (" FOR UPDATE" if lock else "")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, (transaction_id,)).fetchone()


def transaction_items(conn: Conn, transaction_id: int) -> list[dict[str, Any]]:
    """Line items of a transaction."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT line_no, sku, category, quantity, unit_price, amount"
            " FROM crm_transaction_items WHERE transaction_id = %s ORDER BY line_no",
            (transaction_id,),
        ).fetchall()


def mark_reversed(conn: Conn, transaction_id: int, when: datetime) -> None:
    """Flag a transaction as reversed."""
    conn.execute(
        "UPDATE crm_transactions SET reversed_at = %s WHERE id = %s", (when, transaction_id)
    )


def profile_transactions(conn: Conn, profile_id: int, limit: int) -> list[dict[str, Any]]:
    """A profile's latest transactions."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, store_id, external_id, occurred_at, currency, total_amount, kind,"
            " reversed_at FROM crm_transactions WHERE profile_id = %s"
            " ORDER BY occurred_at DESC, id DESC LIMIT %s",
            (profile_id, limit),
        ).fetchall()


def count_prior_sales(conn: Conn, profile_id: int, before_id: int) -> int:
    """Sales of a profile recorded before transaction `before_id` (not reversed)."""
    row = conn.execute(
        "SELECT count(*) FROM crm_transactions WHERE profile_id = %s AND id < %s"
        " AND kind = 'sale' AND reversed_at IS NULL",
        (profile_id, before_id),
    ).fetchone()
    return int(row[0]) if row else 0


def insert_touchpoint(
    conn: Conn,
    *,
    profile_id: int,
    record_id: int,
    channel: str,
    event: str,
    store_id: str | None,
    occurred_at: datetime,
    properties: dict[str, Any],
    external_id: str | None,
) -> int | None:
    """Insert a touchpoint; None when (channel, external_id) already exists."""
    row = conn.execute(
        "INSERT INTO crm_touchpoints (profile_id, record_id, channel, event, store_id,"
        " occurred_at, properties, external_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (channel, external_id) WHERE external_id IS NOT NULL DO NOTHING"
        " RETURNING id",
        (
            profile_id,
            record_id,
            channel,
            event,
            store_id,
            occurred_at,
            Jsonb(properties),
            external_id,
        ),
    ).fetchone()
    return int(row[0]) if row else None


def find_touchpoint(conn: Conn, channel: str, external_id: str) -> dict[str, Any] | None:
    """A touchpoint by its channel's external id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM crm_touchpoints WHERE channel = %s AND external_id = %s",
            (channel, external_id),
        ).fetchone()


def profile_touchpoints(conn: Conn, profile_id: int, limit: int) -> list[dict[str, Any]]:
    """A profile's latest touchpoints."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, channel, event, store_id, occurred_at, properties FROM crm_touchpoints"
            " WHERE profile_id = %s ORDER BY occurred_at DESC, id DESC LIMIT %s",
            (profile_id, limit),
        ).fetchall()


def lifecycle_facts(conn: Conn, profile_id: int) -> dict[str, int]:
    """Counts the lifecycle rules look at, for one profile."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT"
            " (SELECT count(*) FROM crm_touchpoints WHERE profile_id = %(p)s) AS touchpoints,"
            " (SELECT count(*) FROM crm_touchpoints WHERE profile_id = %(p)s"
            "   AND (channel IN ('store_visit') OR event IN ('product_view', 'add_to_cart',"
            "   'wishlist', 'search', 'click', 'app_open'))) AS engagements,"
            " (SELECT count(*) FROM crm_touchpoints WHERE profile_id = %(p)s"
            "   AND event IN ('add_to_cart', 'wishlist')) AS intents,"
            " (SELECT count(*) FROM crm_touchpoints WHERE profile_id = %(p)s"
            "   AND event IN ('referral', 'review')) AS advocacy_events,"
            " (SELECT count(*) FROM crm_transactions WHERE profile_id = %(p)s"
            "   AND kind = 'sale' AND reversed_at IS NULL) AS purchases,"
            " (SELECT count(DISTINCT occurred_at::date) FROM crm_transactions"
            "   WHERE profile_id = %(p)s AND kind = 'sale' AND reversed_at IS NULL)"
            "   AS purchase_days",
            {"p": profile_id},
        ).fetchone()
    return {k: int(v) for k, v in (row or {}).items()}


def current_stage(conn: Conn, profile_id: int) -> str | None:
    """A profile's stored lifecycle stage."""
    row = conn.execute(
        "SELECT lifecycle_stage FROM crm_profiles WHERE id = %s", (profile_id,)
    ).fetchone()
    return str(row[0]) if row and row[0] is not None else None


def set_stage(conn: Conn, profile_id: int, stage: str) -> None:
    """Store a profile's current lifecycle stage."""
    conn.execute("UPDATE crm_profiles SET lifecycle_stage = %s WHERE id = %s", (stage, profile_id))


def insert_transitions(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """Append (profile_id, from_stage, to_stage, reason, store_id, occurred_at) transitions."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm_lifecycle_transitions (profile_id, from_stage, to_stage, reason,"
            " store_id, occurred_at) VALUES (%s, %s, %s, %s, %s, %s)",
            list(rows),
        )


def journey(conn: Conn, profile_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Lifecycle transitions of a person (all member profile ids) in the order they were logged."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, profile_id, from_stage, to_stage, reason, store_id, occurred_at"
            " FROM crm_lifecycle_transitions WHERE profile_id = ANY(%s) ORDER BY id",
            (list(profile_ids),),
        ).fetchall()


def stage_entries(
    conn: Conn, *, start: datetime, end: datetime, store_id: str | None
) -> dict[str, int]:
    """Distinct profiles entering each stage in [start, end), optionally for one store."""
    rows = conn.execute(
        "SELECT to_stage, count(DISTINCT profile_id) FROM crm_lifecycle_transitions"
        " WHERE occurred_at >= %s AND occurred_at < %s AND (%s::text IS NULL OR store_id = %s)"
        " GROUP BY to_stage",
        (start, end, store_id, store_id),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def current_stage_counts(conn: Conn) -> dict[str, int]:
    """Live profiles per current lifecycle stage."""
    rows = conn.execute(
        "SELECT lifecycle_stage, count(*) FROM crm_profiles WHERE merged_into IS NULL"
        " AND lifecycle_stage IS NOT NULL GROUP BY lifecycle_stage"
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}
