"""The dead-letter table: every rejected message with its reason, kept for inspection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from cloud.db.repositories.telemetry import copy_rows

COLUMNS = ("transport", "topic", "device_id", "store_id", "sequence", "reason_code", "reason",
           "payload")  # fmt: skip


def add_dead_letters(conn: psycopg.Connection[Any], rows: Sequence[Sequence[Any]]) -> None:
    """Store rejected messages: (transport, topic, device, store, sequence, code, reason, raw)."""
    copy_rows(conn, "dead_letters", COLUMNS, rows)


def count_by_reason(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """How many dead letters there are per reason code."""
    rows = conn.execute("SELECT reason_code, count(*) FROM dead_letters GROUP BY reason_code")
    return {r[0]: int(r[1]) for r in rows}


def list_dead_letters(
    conn: psycopg.Connection[Any], *, store_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest dead letters (optionally of one store), without their raw payload."""
    rows = conn.execute(
        "SELECT id, received_at, transport, topic, device_id, store_id, sequence, reason_code,"
        " reason, octet_length(payload) FROM dead_letters"
        " WHERE %(s)s::text IS NULL OR store_id = %(s)s ORDER BY id DESC LIMIT %(n)s",
        {"s": store_id, "n": limit},
    )
    keys = ("id", "received_at", "transport", "topic", "device_id", "store_id", "sequence",
            "reason_code", "reason", "size")  # fmt: skip
    return [dict(zip(keys, r, strict=True)) for r in rows]
