"""Persisted online models: versioned state with optimistic concurrency, history, drift events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]
KEEP_VERSIONS = 20


@dataclass(frozen=True)
class ModelRow:
    """One stored model."""

    name: str
    kind: str
    version: int
    state: bytes
    samples_seen: int
    metrics: dict[str, Any]
    watermarks: dict[str, int]
    clock: datetime | None
    updated_at: datetime


_COLS = "name, kind, version, state, samples_seen, metrics, watermarks, clock, updated_at"


def _row(r: tuple[Any, ...]) -> ModelRow:
    return ModelRow(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7], r[8])


def load(conn: Conn, name: str) -> ModelRow | None:
    """The current version of a model, or None."""
    r = conn.execute(f"SELECT {_COLS} FROM ml_models WHERE name = %s", (name,)).fetchone()
    return _row(r) if r else None


def current_version(conn: Conn, name: str) -> int | None:
    """Just the version number (a cheap freshness check for cached models)."""
    r = conn.execute("SELECT version FROM ml_models WHERE name = %s", (name,)).fetchone()
    return int(r[0]) if r else None


def list_models(conn: Conn) -> list[ModelRow]:
    """Every stored model (state included)."""
    return [_row(r) for r in conn.execute(f"SELECT {_COLS} FROM ml_models ORDER BY name")]


def save(
    conn: Conn,
    *,
    name: str,
    kind: str,
    expected_version: int | None,
    state: bytes,
    samples_seen: int,
    metrics: dict[str, Any],
    watermarks: dict[str, int],
    clock: datetime | None,
) -> int | None:
    """Write a new version if the stored one is still `expected_version` (None: must not exist).

    Returns the new version, or None when another writer got there first.
    """
    if expected_version is None:
        r = conn.execute(
            "INSERT INTO ml_models (name, kind, version, state, samples_seen, metrics,"
            " watermarks, clock) VALUES (%s, %s, 1, %s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING RETURNING version",
            (name, kind, state, samples_seen, Jsonb(metrics), Jsonb(watermarks), clock),
        ).fetchone()
    else:
        r = conn.execute(
            "UPDATE ml_models SET version = version + 1, state = %s, samples_seen = %s,"
            " metrics = %s, watermarks = %s, clock = %s, updated_at = now()"
            " WHERE name = %s AND version = %s RETURNING version",
            (state, samples_seen, Jsonb(metrics), Jsonb(watermarks), clock, name, expected_version),
        ).fetchone()
    if r is None:
        return None
    version = int(r[0])
    conn.execute(
        "INSERT INTO ml_model_versions (name, version, state, samples_seen, metrics)"
        " VALUES (%s, %s, %s, %s, %s)",
        (name, version, state, samples_seen, Jsonb(metrics)),
    )
    conn.execute(
        "DELETE FROM ml_model_versions WHERE name = %s AND version <= %s",
        (name, version - KEEP_VERSIONS),
    )
    return version


def versions(
    conn: Conn, name: str, limit: int = 20
) -> list[tuple[int, int, dict[str, Any], datetime]]:
    """(version, samples_seen, metrics, created_at) of the retained versions, newest first."""
    rows = conn.execute(
        "SELECT version, samples_seen, metrics, created_at FROM ml_model_versions"
        " WHERE name = %s ORDER BY version DESC LIMIT %s",
        (name, limit),
    ).fetchall()
    return [(int(r[0]), int(r[1]), r[2], r[3]) for r in rows]


def add_drift_event(
    conn: Conn,
    *,
    model: str,
    version: int,
    sample: int,
    clock: datetime | None,
    error_before: float | None,
    reset: bool,
) -> None:
    """Record a detected drift."""
    conn.execute(
        "INSERT INTO ml_drift_events (model, version, sample, clock, error_before, reset)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (model, version, sample, clock, error_before, reset),
    )


def drift_events(conn: Conn, model: str, limit: int = 20) -> list[dict[str, Any]]:
    """Most recent drift events of a model."""
    rows = conn.execute(
        "SELECT version, sample, clock, error_before, reset, detected_at FROM ml_drift_events"
        " WHERE model = %s ORDER BY id DESC LIMIT %s",
        (model, limit),
    ).fetchall()
    keys = ("version", "sample", "clock", "error_before", "reset", "detected_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def count_drift_events(conn: Conn, model: str) -> int:
    """How many drift events a model has had."""
    r = conn.execute("SELECT count(*) FROM ml_drift_events WHERE model = %s", (model,)).fetchone()
    return int(r[0]) if r else 0


def reject_event(
    conn: Conn, *, source: str, source_id: str, reason: str, payload: dict[str, Any]
) -> None:
    """Count an invalid event in the dead-letter table (once per source row)."""
    conn.execute(
        "INSERT INTO ml_rejected_events (source, source_id, reason, payload)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (source, source_id) DO NOTHING",
        (source, source_id, reason, Jsonb(payload)),
    )


def rejected_events(conn: Conn, source: str, limit: int = 100) -> list[dict[str, Any]]:
    """Recent rejected events of a source."""
    rows = conn.execute(
        "SELECT source_id, reason, payload, rejected_at FROM ml_rejected_events"
        " WHERE source = %s ORDER BY id DESC LIMIT %s",
        (source, limit),
    ).fetchall()
    keys = ("source_id", "reason", "payload", "rejected_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def writers_open(conn: Conn, table: str) -> bool:
    """Whether another transaction holds a write lock on `table` now (it may still commit a row
    whose id is below ids already visible); False for a table that does not exist."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = to_regclass(%s)"
        " AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid())",
        (table,),
    ).fetchone()
    return bool(row and row[0])
