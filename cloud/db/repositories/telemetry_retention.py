"""Retention of ingest data where TimescaleDB policies do not exist, and stale presence."""

from __future__ import annotations

from typing import Any

import psycopg

from cloud.db.repositories.telemetry import rollup_is_table

Conn = psycopg.Connection[Any]
TIME_SERIES = ("line_counts", "zone_occupancy", "queue_stats", "shelf_interactions",
               "demographics", "emotions", "device_health")  # fmt: skip


def prune(
    conn: Conn, *, raw_days: int, ledger_days: int, event_hours: int, dead_letter_days: int
) -> dict[str, int]:
    """Delete expired rows; returns rows deleted per table. Raw time series are pruned here only
    on plain PostgreSQL (TimescaleDB has retention policies)."""
    deleted: dict[str, int] = {}
    if rollup_is_table(conn):
        for table in TIME_SERIES:
            cur = conn.execute(
                f"DELETE FROM {table} WHERE window_start < now() - make_interval(days => %s)",
                (raw_days,),
            )
            deleted[table] = cur.rowcount
        cur = conn.execute(
            "DELETE FROM line_counts_1h WHERE bucket < now() - make_interval(days => %s)",
            (raw_days,),
        )
        deleted["line_counts_1h"] = cur.rowcount
    for table, column, interval in (
        ("envelopes", "received_at", f"{ledger_days} days"),
        ("footfall_events", "created_at", f"{event_hours} hours"),
        ("dead_letters", "received_at", f"{dead_letter_days} days"),
    ):
        cur = conn.execute(
            f"DELETE FROM {table} WHERE {column} < now() - %s::interval", (interval,)
        )
        deleted[table] = cur.rowcount
    return deleted


def mark_stale_offline(conn: Conn, *, silent_s: int) -> int:
    """Devices flagged online that sent nothing for `silent_s` seconds (and whose last presence
    message is older than that) are set offline; returns how many."""
    cur = conn.execute(
        "UPDATE devices SET online = false, status_at = now() WHERE online"
        " AND coalesce(last_seen_at, created_at) < now() - make_interval(secs => %(s)s)"
        " AND coalesce(status_at, created_at) < now() - make_interval(secs => %(s)s)",
        {"s": silent_s},
    )
    return cur.rowcount
