"""API keys: create, look up by key hash, revoke."""

from __future__ import annotations

from typing import Any

import psycopg

from cloud.core.security import Principal, Role, generate_api_key, hash_api_key


def create_api_key(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    role: Role,
    store_ids: frozenset[str] | set[str] = frozenset(),
) -> tuple[int, str]:
    """Create an API key; returns (id, plaintext key). The plaintext is never stored."""
    key = generate_api_key()
    row = conn.execute(
        "INSERT INTO api_keys (key_hash, name, role, store_ids) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        (hash_api_key(key), name, role.value, sorted(store_ids)),
    ).fetchone()
    assert row is not None
    return int(row[0]), key


def principal_for_api_key(conn: psycopg.Connection[Any], key: str) -> Principal | None:
    """The principal of an active API key, or None when unknown or revoked."""
    row = conn.execute(
        "SELECT name, role, store_ids FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
        (hash_api_key(key),),
    ).fetchone()
    if row is None:
        return None
    return Principal(subject=f"apikey:{row[0]}", role=Role(row[1]), store_ids=frozenset(row[2]))


def revoke_api_key(conn: psycopg.Connection[Any], key_id: int) -> bool:
    """Revoke a key by id; False when no active key has that id."""
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1
