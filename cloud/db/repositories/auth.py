"""API keys (create, look up, list, rotate, revoke) and revoked bearer tokens: their SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from cloud.core.security import Principal, Role, generate_api_key, hash_api_key


@dataclass(frozen=True)
class ApiKeyInfo:
    """What `mallpulse cloud apikey list` shows of a key (never the key itself)."""

    id: int
    name: str
    role: Role
    store_ids: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    rotated_to: int | None
    active: bool


def create_api_key(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    role: Role,
    store_ids: frozenset[str] | set[str] = frozenset(),
    ttl: timedelta = timedelta(days=90),
) -> tuple[int, str]:
    """Create an API key living `ttl`; returns (id, plaintext key), the plaintext never stored."""
    key = generate_api_key()
    row = conn.execute(
        "INSERT INTO api_keys (key_hash, name, role, store_ids, expires_at)"
        " VALUES (%s, %s, %s, %s, now() + %s) RETURNING id",
        (hash_api_key(key), name, role.value, sorted(store_ids), ttl),
    ).fetchone()
    assert row is not None
    return int(row[0]), key


def principal_for_api_key(conn: psycopg.Connection[Any], key: str) -> Principal | None:
    """The principal of an active API key, or None when unknown, expired or revoked."""
    row = conn.execute(
        "SELECT name, role, store_ids FROM api_keys"
        " WHERE key_hash = %s AND revoked_at IS NULL AND expires_at > now()",
        (hash_api_key(key),),
    ).fetchone()
    if row is None:
        return None
    return Principal(subject=f"apikey:{row[0]}", role=Role(row[1]), store_ids=frozenset(row[2]))


def list_api_keys(conn: psycopg.Connection[Any]) -> list[ApiKeyInfo]:
    """Every key, newest first."""
    rows = conn.execute(
        "SELECT id, name, role, store_ids, created_at, expires_at, revoked_at, rotated_to,"
        " revoked_at IS NULL AND expires_at > now() FROM api_keys ORDER BY id DESC"
    ).fetchall()
    return [
        ApiKeyInfo(int(r[0]), r[1], Role(r[2]), tuple(r[3]), r[4], r[5], r[6], r[7], bool(r[8]))
        for r in rows
    ]


def revoke_api_key(conn: psycopg.Connection[Any], key_id: int) -> bool:
    """Revoke a key by id; False when no active key has that id."""
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1


def rotate_api_key(
    conn: psycopg.Connection[Any], key_id: int, *, grace: timedelta, ttl: timedelta
) -> tuple[int, str] | None:
    """A new key with the same name, role and stores; the old one expires after `grace`.

    None when `key_id` is not an active key. The caller's transaction covers both steps.
    """
    old = conn.execute(
        "SELECT name, role, store_ids FROM api_keys WHERE id = %s"
        " AND revoked_at IS NULL AND expires_at > now() AND rotated_to IS NULL FOR UPDATE",
        (key_id,),
    ).fetchone()
    if old is None:
        return None
    new_id, key = create_api_key(
        conn, name=old[0], role=Role(old[1]), store_ids=set(old[2]), ttl=ttl
    )
    conn.execute(
        "UPDATE api_keys SET rotated_to = %s, expires_at = least(expires_at, now() + %s)"
        " WHERE id = %s",
        (new_id, grace, key_id),
    )
    return new_id, key


def revoke_token(
    conn: psycopg.Connection[Any], *, jti: str, keep_for: timedelta, reason: str = ""
) -> bool:
    """Record a revoked token id, kept `keep_for`; False when it was already revoked.

    Rows past their expiry are purged on the way: those tokens are refused as expired anyway.
    """
    conn.execute("DELETE FROM revoked_tokens WHERE expires_at < now()")
    cur = conn.execute(
        "INSERT INTO revoked_tokens (jti, expires_at, reason) VALUES (%s, now() + %s, %s)"
        " ON CONFLICT (jti) DO NOTHING",
        (jti, keep_for, reason),
    )
    return cur.rowcount == 1


def is_token_revoked(conn: psycopg.Connection[Any], jti: str) -> bool:
    """True when the token id has been revoked."""
    row = conn.execute("SELECT 1 FROM revoked_tokens WHERE jti = %s", (jti,)).fetchone()
    return row is not None
