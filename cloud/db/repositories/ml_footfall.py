"""Hourly footfall series (from the ingest rollup) and footfall anomaly scores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def stores_with_footfall(conn: Conn) -> list[str]:
    """Stores that have hourly line counts."""
    return [r[0] for r in conn.execute("SELECT DISTINCT store_id FROM line_counts_1h ORDER BY 1")]


def closed_hours(
    conn: Conn, store_id: str, after: datetime | None, limit: int
) -> list[tuple[datetime, float]]:
    """(bucket, people in) of the store's hours after `after`, except the newest (still open)."""
    rows = conn.execute(
        "WITH h AS (SELECT bucket, sum(in_count)::float8 AS people FROM line_counts_1h"
        " WHERE store_id = %s AND (%s::timestamptz IS NULL OR bucket > %s) GROUP BY bucket)"
        " SELECT bucket, people FROM h WHERE bucket < (SELECT max(bucket) FROM h)"
        " ORDER BY bucket LIMIT %s",
        (store_id, after, after, limit),
    ).fetchall()
    return [(r[0], float(r[1])) for r in rows]


def save_scores(
    conn: Conn, store_id: str, rows: Sequence[tuple[datetime, float, float | None, float, bool]]
) -> None:
    """Upsert scored hours (bucket, observed, expected, score, is_anomaly)."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ml_footfall_scores (store_id, bucket_start, observed, expected, score,"
            " is_anomaly) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (store_id, bucket_start)"
            " DO UPDATE SET observed = EXCLUDED.observed, expected = EXCLUDED.expected,"
            " score = EXCLUDED.score, is_anomaly = EXCLUDED.is_anomaly",
            [(store_id, *r) for r in rows],
        )


def scores(
    conn: Conn, store_id: str, *, anomalies_only: bool, since: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """Scored hours of a store, newest first."""
    rows = conn.execute(
        "SELECT bucket_start, observed, expected, score, is_anomaly FROM ml_footfall_scores"
        " WHERE store_id = %s AND (NOT %s OR is_anomaly)"
        " AND (%s::timestamptz IS NULL OR bucket_start >= %s)"
        " ORDER BY bucket_start DESC LIMIT %s",
        (store_id, anomalies_only, since, since, limit),
    ).fetchall()
    keys = ("bucket_start", "observed", "expected", "score", "is_anomaly")
    return [dict(zip(keys, r, strict=True)) for r in rows]
