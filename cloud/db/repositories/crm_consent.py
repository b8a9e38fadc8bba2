"""SQL for consent state and its append-only audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def lock_consent(conn: Conn, profile_id: int, channel: str, purpose: str) -> dict[str, Any] | None:
    """Current consent row for update."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM crm_consents WHERE profile_id = %s AND channel = %s AND purpose = %s"
            " FOR UPDATE",
            (profile_id, channel, purpose),
        ).fetchone()


def upsert_consent(
    conn: Conn,
    *,
    profile_id: int,
    channel: str,
    purpose: str,
    status: str,
    source: str,
    proof: str | None,
    token_hash: str | None,
    token_expires_at: datetime | None,
    when: datetime,
) -> None:
    """Set the current consent."""
    conn.execute(
        "INSERT INTO crm_consents (profile_id, channel, purpose, status, source, proof,"
        " token_hash, token_expires_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (profile_id, channel, purpose) DO UPDATE SET status = EXCLUDED.status,"
        " source = EXCLUDED.source, proof = EXCLUDED.proof, token_hash = EXCLUDED.token_hash,"
        " token_expires_at = EXCLUDED.token_expires_at, updated_at = EXCLUDED.updated_at",
        (profile_id, channel, purpose, status, source, proof, token_hash, token_expires_at, when),
    )


def append_event(
    conn: Conn,
    *,
    profile_id: int,
    channel: str,
    purpose: str,
    status: str,
    source: str,
    proof: str | None,
    actor: str,
    when: datetime,
) -> int:
    """Append to the audit trail."""
    row = conn.execute(
        "INSERT INTO crm_consent_events (profile_id, channel, purpose, status, source, proof,"
        " actor, occurred_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (profile_id, channel, purpose, status, source, proof, actor, when),
    ).fetchone()
    assert row is not None
    return int(row[0])


def by_token_hash(conn: Conn, token_hash: str) -> dict[str, Any] | None:
    """The pending consent a confirmation token belongs to, locked."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM crm_consents WHERE token_hash = %s FOR UPDATE", (token_hash,)
        ).fetchone()


def enqueue_message(
    conn: Conn,
    *,
    profile_id: int,
    channel: str,
    address: str,
    template: str,
    payload: dict[str, Any],
    secret: str | None,
    when: datetime,
) -> int:
    """Queue a message for the subject's own channel in the message outbox."""
    row = conn.execute(
        "INSERT INTO crm_message_outbox (profile_id, channel, address, template, payload, secret,"
        " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (profile_id, channel, address, template, Jsonb(payload), secret, when),
    ).fetchone()
    assert row is not None
    return int(row[0])


def unsent_messages(conn: Conn, limit: int = 100) -> list[dict[str, Any]]:
    """Messages a sender has still to deliver, oldest first, locked (SKIP LOCKED) for it."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, profile_id, channel, address, template, payload, secret, created_at"
            " FROM crm_message_outbox WHERE sent_at IS NULL ORDER BY id LIMIT %s"
            " FOR UPDATE SKIP LOCKED",
            (limit,),
        ).fetchall()


def mark_sent(conn: Conn, message_id: int, when: datetime) -> None:
    """Record a delivery and forget the secret it carried."""
    conn.execute(
        "UPDATE crm_message_outbox SET sent_at = %s, secret = NULL WHERE id = %s",
        (when, message_id),
    )


def consents_of(conn: Conn, profile_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Effective consents of a person: the latest per channel and purpose over its profiles."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT DISTINCT ON (channel, purpose) channel, purpose, status, source, proof,"
            " updated_at FROM crm_consents WHERE profile_id = ANY(%s)"
            " ORDER BY channel, purpose, updated_at DESC",
            (list(profile_ids),),
        ).fetchall()


def events_of(conn: Conn, profile_ids: Sequence[int], limit: int) -> list[dict[str, Any]]:
    """Audit trail of a person, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, channel, purpose, status, source, proof, actor, occurred_at"
            " FROM crm_consent_events WHERE profile_id = ANY(%s) ORDER BY id DESC LIMIT %s",
            (list(profile_ids), limit),
        ).fetchall()


def scores_of(conn: Conn, profile_id: int) -> dict[str, Any] | None:
    """Predictive scores of a profile, when the analytics tables exist."""
    row = conn.execute("SELECT to_regclass('ml_customer_scores') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute(
        "SELECT to_jsonb(s) - 'customer_id' FROM ml_customer_scores s WHERE customer_id = %s",
        (str(profile_id),),
    ).fetchone()
    return dict(found[0]) if found else None
