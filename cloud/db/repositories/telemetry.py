"""Ingest writes: the envelope ledger, time-series rows (COPY), rollups, live state, events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]
NOTIFY_CHANNEL = "mallpulse_footfall"


def device_stores(conn: Conn, device_ids: Iterable[str]) -> dict[str, str]:
    """The store of each known device among `device_ids`."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    rows = conn.execute("SELECT id, store_id FROM devices WHERE id = ANY(%b::text[])", (ids,))
    return {r[0]: r[1] for r in rows}


def claim_envelopes(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> set[tuple[str, int]]:
    """Insert (device, sequence, store, kind, start, end) ledger rows; returns those that were
    new (the rest were stored before: duplicates)."""
    if not rows:
        return set()
    cols = list(zip(*sorted(rows, key=lambda r: (r[0], r[1])), strict=True))
    cur = conn.execute(
        "INSERT INTO envelopes (device_id, sequence, store_id, kind, window_start, window_end)"
        " SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::text[],"
        " %b::timestamptz[], %b::timestamptz[])"
        " ON CONFLICT (device_id, sequence) DO NOTHING RETURNING device_id, sequence",
        [list(c) for c in cols],
    )
    return {(r[0], int(r[1])) for r in cur}


def copy_rows(
    conn: Conn, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Bulk-load rows with COPY (table and column names come from code, never from input)."""
    if not rows:
        return
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def rollup_is_table(conn: Conn) -> bool:
    """True when line_counts_1h is a plain table that ingest keeps current (no TimescaleDB)."""
    row = conn.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = 'line_counts_1h' AND n.nspname = current_schema()"
    ).fetchone()
    return row is not None and row[0] == "r"


def add_hourly(conn: Conn, items: dict[tuple[str, str, datetime], list[int]]) -> None:
    """Add in/out counts to the plain hourly rollup, in key order (no deadlocks between
    concurrent ingest processes)."""
    if not items:
        return
    keys = sorted(items)
    conn.execute(
        "INSERT INTO line_counts_1h (store_id, line_id, bucket, in_count, out_count)"
        " SELECT * FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::bigint[],"
        " %b::bigint[]) ON CONFLICT (store_id, bucket, line_id) DO UPDATE SET"
        " in_count = line_counts_1h.in_count + excluded.in_count,"
        " out_count = line_counts_1h.out_count + excluded.out_count",
        (
            [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
            [items[k][0] for k in keys], [items[k][1] for k in keys],
        ),
    )  # fmt: skip


def add_daily(conn: Conn, items: dict[tuple[str, str, datetime], list[int]]) -> None:
    """Add in/out counts to the per-local-day rollup; the day is the window start's date in
    the store's time zone."""
    if not items:
        return
    keys = sorted(items)
    conn.execute(
        "INSERT INTO line_counts_1d (store_id, line_id, day, in_count, out_count)"
        " SELECT u.s, u.l, (u.t AT TIME ZONE st.timezone)::date AS d, sum(u.i), sum(u.o)"
        " FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::bigint[], %b::bigint[])"
        " AS u(s, l, t, i, o) JOIN stores st ON st.id = u.s"
        " GROUP BY u.s, u.l, d ORDER BY u.s, d, u.l"
        " ON CONFLICT (store_id, day, line_id) DO UPDATE SET"
        " in_count = line_counts_1d.in_count + excluded.in_count,"
        " out_count = line_counts_1d.out_count + excluded.out_count",
        (
            [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
            [items[k][0] for k in keys], [items[k][1] for k in keys],
        ),
    )  # fmt: skip


def set_live_zones(conn: Conn, state: dict[tuple[str, str], tuple[datetime, int]]) -> None:
    """Upsert the latest occupancy per zone (an older window never overwrites a newer one)."""
    if not state:
        return
    keys = sorted(state)
    conn.execute(
        "INSERT INTO live_zones (store_id, zone_id, window_end, occupancy)"
        " SELECT * FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::int[])"
        " ON CONFLICT (store_id, zone_id) DO UPDATE SET occupancy = excluded.occupancy,"
        " window_end = excluded.window_end WHERE live_zones.window_end <= excluded.window_end",
        (
            [k[0] for k in keys], [k[1] for k in keys],
            [state[k][0] for k in keys], [state[k][1] for k in keys],
        ),
    )  # fmt: skip


def set_live_queues(conn: Conn, state: dict[tuple[str, str], tuple[datetime, int, float]]) -> None:
    """Upsert the latest length and estimated wait per queue."""
    if not state:
        return
    keys = sorted(state)
    conn.execute(
        "INSERT INTO live_queues (store_id, zone_id, window_end, length, estimated_wait_s)"
        " SELECT * FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::int[],"
        " %b::float8[]) ON CONFLICT (store_id, zone_id) DO UPDATE SET"
        " length = excluded.length, estimated_wait_s = excluded.estimated_wait_s,"
        " window_end = excluded.window_end WHERE live_queues.window_end <= excluded.window_end",
        (
            [k[0] for k in keys], [k[1] for k in keys], [state[k][0] for k in keys],
            [state[k][1] for k in keys], [state[k][2] for k in keys],
        ),
    )  # fmt: skip


def register_catalogue(
    conn: Conn, items: set[tuple[str, str, str]], cameras: set[tuple[str, str, str]]
) -> None:
    """Record lines, zones and cameras the first time a device reports them."""
    lines = sorted((s, i) for s, kind, i in items if kind == "line")
    zones = sorted((s, kind, i) for s, kind, i in items if kind != "line")
    if lines:
        conn.execute(
            "INSERT INTO lines (store_id, id) SELECT * FROM unnest(%b::text[], %b::text[])"
            " ON CONFLICT DO NOTHING",
            ([x[0] for x in lines], [x[1] for x in lines]),
        )
    if zones:
        conn.execute(
            "INSERT INTO zones (store_id, kind, id)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]) ON CONFLICT DO NOTHING",
            ([x[0] for x in zones], [x[1] for x in zones], [x[2] for x in zones]),
        )
    cams = sorted(cameras)
    if cams:
        conn.execute(
            "INSERT INTO cameras (store_id, device_id, id)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]) ON CONFLICT DO NOTHING",
            ([x[0] for x in cams], [x[1] for x in cams], [x[2] for x in cams]),
        )


def touch_devices(conn: Conn, device_ids: Iterable[str]) -> None:
    """Mark devices as seen now (rows locked in id order; skipped if touched this second)."""
    ids = sorted(set(device_ids))
    if ids:
        conn.execute(
            "UPDATE devices d SET last_seen_at = now() FROM (SELECT id FROM devices"
            " WHERE id = ANY(%s) AND (last_seen_at IS NULL OR last_seen_at < now() - interval"
            " '1 second') ORDER BY id FOR UPDATE SKIP LOCKED) l WHERE d.id = l.id",
            (ids,),
        )


def publish_events(conn: Conn, events: dict[str, dict[str, Any]]) -> None:
    """Store one live event per store and NOTIFY listeners (delivered when the transaction
    commits, so a listener never sees uncommitted data)."""
    if not events:
        return
    stores = sorted(events)
    bodies = [json.dumps(events[s], default=str) for s in stores]
    conn.execute(
        "WITH ev AS (INSERT INTO footfall_events (store_id, body)"
        " SELECT * FROM unnest(%s::text[], %s::jsonb[]) RETURNING id, store_id)"
        " SELECT pg_notify(%s, ev.store_id || ':' || ev.id) FROM ev",
        (stores, bodies, NOTIFY_CHANNEL),
    )


def apply_status(
    conn: Conn, *, device_id: str, online: bool, at: datetime, software_version: str
) -> bool:
    """Set a device online/offline unless a newer status was applied; False when stale."""
    cur = conn.execute(
        "UPDATE devices SET online = %s, status_at = %s,"
        " software_version = COALESCE(NULLIF(%s, ''), software_version)"
        " WHERE id = %s AND (status_at IS NULL OR status_at <= %s)",
        (online, at, software_version, device_id, at),
    )
    return cur.rowcount == 1


def stream_opened(conn: Conn, device_id: str) -> datetime | None:
    """Mark a device online as a transport stream opens; returns the stamp that stands for
    this stream's presence (None for an unknown device)."""
    row = conn.execute(
        "UPDATE devices SET online = true, status_at = clock_timestamp() WHERE id = %s"
        " RETURNING status_at",
        (device_id,),
    ).fetchone()
    return row[0] if row else None


def stream_closed(conn: Conn, device_id: str, opened: datetime) -> bool:
    """Mark a device offline as its stream closes, unless its presence changed since the stream
    opened (a newer stream or a status message): an old stream closing after a reconnect must
    not hide the open one. False when it left the device as it was."""
    cur = conn.execute(
        "UPDATE devices SET online = false, status_at = clock_timestamp()"
        " WHERE id = %s AND status_at = %s",
        (device_id, opened),
    )
    return cur.rowcount == 1
