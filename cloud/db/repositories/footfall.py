"""Footfall reads: live state, bucketed series, shelves, demographics, chain views, events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import psycopg

Conn = psycopg.Connection[Any]
Bucket = Literal["15m", "1h", "1d"]

_SERIES_SQL: dict[str, str] = {
    # 15-minute bins are the same in every real time zone (offsets are multiples of 15 min).
    "15m": "SELECT date_bin('15 minutes', window_start, '2000-01-01 00:00:00+00') AS b,"
    " sum(in_count), sum(out_count) FROM line_counts"
    " WHERE store_id = %(s)s AND window_start >= %(f)s AND window_start < %(t)s"
    " GROUP BY b ORDER BY b",
    "1h": "SELECT date_trunc('hour', bucket, %(tz)s) AS b, sum(in_count), sum(out_count)"
    " FROM line_counts_1h WHERE store_id = %(s)s AND bucket >= %(f)s AND bucket < %(t)s"
    " GROUP BY b ORDER BY b",
    "1d": "SELECT date_trunc('day', bucket, %(tz)s) AS b, sum(in_count), sum(out_count)"
    " FROM line_counts_1h WHERE store_id = %(s)s AND bucket >= %(f)s AND bucket < %(t)s"
    " GROUP BY b ORDER BY b",
}
# Stores whose UTC offset is not a whole number of hours (e.g. Asia/Kolkata) cannot use the
# UTC-hour rollup: their local hours and days are cut from the raw windows instead.
_RAW_SQL = (
    "SELECT date_trunc(%(unit)s, window_start, %(tz)s) AS b, sum(in_count), sum(out_count)"
    " FROM line_counts WHERE store_id = %(s)s AND window_start >= %(f)s AND window_start < %(t)s"
    " GROUP BY b ORDER BY b"
)


def store_timezone(conn: Conn, store_id: str) -> str | None:
    """The store's IANA time zone, or None when the store does not exist."""
    row = conn.execute("SELECT timezone FROM stores WHERE id = %s", (store_id,)).fetchone()
    return str(row[0]) if row else None


def live(conn: Conn, store_id: str) -> tuple[Any, ...] | None:
    """In one round trip: (timezone, zones [[id, occupancy, as_of]], today's lines
    [[id, in, out]] in the store's calendar, queues [[id, length, wait, as_of]], devices online,
    devices total); None when the store does not exist."""
    return conn.execute(
        "SELECT st.timezone,"
        " (SELECT coalesce(json_agg(json_build_array(z.zone_id, z.occupancy, z.window_end)"
        "   ORDER BY z.zone_id), '[]') FROM live_zones z WHERE z.store_id = st.id),"
        " (SELECT coalesce(json_agg(json_build_array(d.line_id, d.in_count, d.out_count)"
        "   ORDER BY d.line_id), '[]') FROM line_counts_1d d WHERE d.store_id = st.id"
        "   AND d.day = (now() AT TIME ZONE st.timezone)::date),"
        " (SELECT coalesce(json_agg(json_build_array(q.zone_id, q.length, q.estimated_wait_s,"
        "   q.window_end) ORDER BY q.zone_id), '[]') FROM live_queues q WHERE q.store_id = st.id),"
        " (SELECT count(*) FILTER (WHERE v.online) FROM devices v WHERE v.store_id = st.id),"
        " (SELECT count(*) FROM devices v WHERE v.store_id = st.id)"
        " FROM stores st WHERE st.id = %s",
        (store_id,),
    ).fetchone()


def series(
    conn: Conn,
    store_id: str,
    timezone: str,
    start: datetime,
    end: datetime,
    bucket: Bucket,
    *,
    whole_hours: bool = True,
) -> list[tuple[datetime, int, int]]:
    """In/out per bucket (bucket start, in, out); only buckets with data. `whole_hours` False
    (a half-hour time zone) reads hours and days from the raw windows."""
    params = {"s": store_id, "tz": timezone, "f": start, "t": end}
    if bucket != "15m" and not whole_hours:
        params["unit"] = "hour" if bucket == "1h" else "day"
        rows = conn.execute(_RAW_SQL, params).fetchall()
    else:
        rows = conn.execute(_SERIES_SQL[bucket], params).fetchall()
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def shelves(conn: Conn, store_id: str, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    """(shelf, interactions, total dwell s) over a range."""
    return conn.execute(
        "SELECT shelf_id, sum(interactions), sum(total_dwell_s) FROM shelf_interactions"
        " WHERE store_id = %s AND window_start >= %s AND window_start < %s"
        " GROUP BY shelf_id ORDER BY shelf_id",
        (store_id, start, end),
    ).fetchall()


def zone_dwell(conn: Conn, store_id: str, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    """(zone, visits ended, total dwell s, peak occupancy) over a range."""
    return conn.execute(
        "SELECT zone_id, sum(dwell_count), sum(dwell_total_s), max(max_occupancy)"
        " FROM zone_occupancy WHERE store_id = %s AND window_start >= %s AND window_start < %s"
        " GROUP BY zone_id ORDER BY zone_id",
        (store_id, start, end),
    ).fetchall()


def demographics(
    conn: Conn, store_id: str, start: datetime, end: datetime
) -> list[tuple[str, str, int]]:
    """(age band, gender, count) over a range."""
    rows = conn.execute(
        "SELECT age_band, gender, sum(count) FROM demographics"
        " WHERE store_id = %s AND window_start >= %s AND window_start < %s"
        " GROUP BY age_band, gender ORDER BY age_band, gender",
        (store_id, start, end),
    ).fetchall()
    return [(r[0], r[1], int(r[2])) for r in rows]


def emotions(
    conn: Conn, store_id: str, start: datetime, end: datetime
) -> list[tuple[str, str, int]]:
    """(zone id, valence, count) over a range."""
    rows = conn.execute(
        "SELECT zone_id, valence, sum(count) FROM emotions"
        " WHERE store_id = %s AND window_start >= %s AND window_start < %s"
        " GROUP BY zone_id, valence ORDER BY zone_id, valence",
        (store_id, start, end),
    ).fetchall()
    return [(r[0], r[1], int(r[2])) for r in rows]


def chain_totals(conn: Conn, start: datetime, end: datetime) -> dict[str, tuple[int, int]]:
    """In/out per store over a range, from the hourly rollup."""
    rows = conn.execute(
        "SELECT store_id, sum(in_count), sum(out_count) FROM line_counts_1h"
        " WHERE bucket >= %s AND bucket < %s GROUP BY store_id",
        (start, end),
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def chain_live(conn: Conn) -> list[tuple[Any, ...]]:
    """Per store: (id, name, timezone, occupancy, in today, out today, online, devices)."""
    return conn.execute(
        "SELECT s.id, s.name, s.timezone,"
        " (SELECT coalesce(sum(occupancy), 0) FROM live_zones z WHERE z.store_id = s.id),"
        " (SELECT coalesce(sum(in_count), 0) FROM line_counts_1d d WHERE d.store_id = s.id"
        "   AND d.day = (now() AT TIME ZONE s.timezone)::date),"
        " (SELECT coalesce(sum(out_count), 0) FROM line_counts_1d d WHERE d.store_id = s.id"
        "   AND d.day = (now() AT TIME ZONE s.timezone)::date),"
        " (SELECT count(*) FILTER (WHERE online) FROM devices v WHERE v.store_id = s.id),"
        " (SELECT count(*) FROM devices v WHERE v.store_id = s.id)"
        " FROM stores s ORDER BY s.id"
    ).fetchall()


def events_after(conn: Conn, store_id: str, after: int, limit: int = 500) -> list[tuple[int, Any]]:
    """Live events of a store with id > `after`, oldest first."""
    rows = conn.execute(
        "SELECT id, body FROM footfall_events WHERE store_id = %s AND id > %s ORDER BY id LIMIT %s",
        (store_id, after, limit),
    ).fetchall()
    return [(int(r[0]), r[1]) for r in rows]


def last_event_id(conn: Conn, store_id: str) -> int:
    """The newest live event id of a store (0 when none)."""
    row = conn.execute(
        "SELECT coalesce(max(id), 0) FROM footfall_events WHERE store_id = %s", (store_id,)
    ).fetchone()
    return int(row[0]) if row else 0
