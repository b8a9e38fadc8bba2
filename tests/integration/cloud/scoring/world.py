"""Helpers that write profiles, events and sales straight into the tables scoring reads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def profile(conn: Conn, attributes: dict[str, Any] | None = None) -> int:
    """A new profile; returns its id."""
    row = conn.execute(
        "INSERT INTO crm_profiles (attributes) VALUES (%s) RETURNING id",
        (Jsonb(attributes or {}),),
    ).fetchone()
    assert row is not None
    return int(row[0])


def event(
    conn: Conn, pid: int | None, name: str, at: datetime, props: dict[str, Any] | None = None
) -> int:
    """A track event of profile `pid`; returns its id."""
    row = conn.execute(
        "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
        " profile_id, properties) VALUES (%s, %s, 'test', %s, 'track', %s, %s, %s) RETURNING id",
        (at, at, uuid.uuid4().hex, name, pid, Jsonb(props or {})),
    ).fetchone()
    assert row is not None
    return int(row[0])


def sale(conn: Conn, pid: int, at: datetime, store: str = "sc-s1") -> int:
    """A POS sale of profile `pid`; returns its id."""
    rec = conn.execute(
        "INSERT INTO crm_records (profile_id, source) VALUES (%s, 'pos') RETURNING id", (pid,)
    ).fetchone()
    assert rec is not None
    row = conn.execute(
        "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id, occurred_at,"
        " currency, total_amount) VALUES (%s, %s, %s, %s, %s, 'EUR', 10) RETURNING id",
        (pid, rec[0], store, uuid.uuid4().hex, at),
    ).fetchone()
    assert row is not None
    return int(row[0])
