"""Idempotency keys: the same request twice runs once and returns the same response."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from cloud.crm.errors import CrmInvalidInputError, IdempotencyKeyReusedError
from cloud.db.repositories import crm_loyalty as repo

Conn = psycopg.Connection[Any]


def request_hash(request: Mapping[str, Any]) -> str:
    """A stable digest of a request body."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def run_once(
    conn: Conn,
    *,
    scope: str,
    key: str,
    request: Mapping[str, Any],
    action: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Run `action` once per (scope, key) and return its response; a retry with the same key and
    body returns the stored response, a different body is IdempotencyKeyReusedError. The key is
    claimed in the same transaction as the action, so a failed action leaves no claim."""
    if not key or len(key) > 200:
        raise CrmInvalidInputError("an Idempotency-Key of 1-200 characters is required")
    digest = request_hash(request)
    with conn.transaction():
        if not repo.claim_idempotency_key(conn, scope, key, digest):
            stored = repo.get_idempotency_key(conn, scope, key)
            assert stored is not None
            if stored[0] != digest:
                raise IdempotencyKeyReusedError(
                    f"Idempotency-Key {key!r} was already used with a different request"
                )
            return {**stored[1], "replayed": True}
        response = action()
        repo.store_idempotent_response(conn, scope, key, response)
    return {**response, "replayed": False}
