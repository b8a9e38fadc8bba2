"""Write-key sources: creation (the key is shown once, only its hash is kept), authentication
of collection calls, settings, tracking plans and violation counters."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import psycopg

from cloud.core.errors import AuthenticationError
from cloud.crm.errors import CrmConflictError, CrmNotFoundError
from cloud.crm.events import repository as repo
from cloud.crm.events.plan import check_schema
from cloud.crm.events.repository import Source, ViolationCount

Conn = psycopg.Connection[Any]
KEY_PREFIX = "mpwk_"


class WriteKeyError(AuthenticationError):
    """No write key, or one no live source has: a 401 challenging for HTTP Basic."""

    challenge = 'Basic realm="mallpulse-events"'


def hash_key(write_key: str) -> str:
    """SHA-256 (hex) of a write key: what the database keeps."""
    return hashlib.sha256(write_key.encode()).hexdigest()


def create_source(
    conn: Conn,
    *,
    source_id: str,
    name: str,
    plan_mode: str = "flag",
    retention_days: int | None = None,
    consent_required: bool = True,
) -> tuple[Source, str]:
    """Create a source and commit; returns it with its write key (never retrievable again)."""
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    created = repo.insert_source(
        conn, source_id=source_id, name=name, key_hash=hash_key(key), key_prefix=key[:10],
        plan_mode=plan_mode, retention_days=retention_days, consent_required=consent_required,
    )  # fmt: skip
    if created is None:
        raise CrmConflictError(f"a source with id {source_id!r} exists already")
    conn.commit()
    return created, key


def authenticate(conn: Conn, write_key: str | None) -> Source:
    """The live source of a write key; WriteKeyError for none, an unknown or revoked key."""
    if not write_key:
        raise WriteKeyError(
            "a write key is required (HTTP Basic user name, or `writeKey` in the body)"
        )
    source = repo.source_by_key_hash(conn, hash_key(write_key))
    if source is None:
        raise WriteKeyError("unknown or revoked write key")
    return source


def get_source(conn: Conn, source_id: str) -> Source:
    """A source by id; CrmNotFoundError when there is none."""
    source = repo.get_source(conn, source_id)
    if source is None:
        raise CrmNotFoundError(f"no event source {source_id!r}")
    return source


def update_source(
    conn: Conn,
    source_id: str,
    *,
    plan_mode: str | None = None,
    retention_days: int | None = None,
    clear_retention: bool = False,
) -> Source:
    """Change a source's plan mode or retention and commit."""
    updated = repo.update_source(
        conn, source_id, plan_mode=plan_mode, retention_days=retention_days, clear=clear_retention
    )
    if updated is None:
        raise CrmNotFoundError(f"no event source {source_id!r}")
    conn.commit()
    return updated


def set_plan_entry(
    conn: Conn, source_id: str, type_: str, event: str, schema: dict[str, Any]
) -> None:
    """Set one event's schema in a source's tracking plan and commit (a bad schema is a 422)."""
    get_source(conn, source_id)
    check_schema(schema)
    repo.upsert_plan(conn, source_id, type_, event, schema)
    conn.commit()


def remove_plan_entry(conn: Conn, source_id: str, type_: str, event: str) -> None:
    """Remove one event from a source's tracking plan and commit."""
    if not repo.delete_plan(conn, source_id, type_, event):
        raise CrmNotFoundError(f"no plan entry {type_}/{event} for source {source_id!r}")
    conn.commit()


def plan(conn: Conn, source_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """A source's tracking plan: (type, event) -> schema."""
    get_source(conn, source_id)
    return repo.plan_of(conn, source_id)


def violations(conn: Conn, source_id: str) -> list[ViolationCount]:
    """A source's violation counters."""
    get_source(conn, source_id)
    return repo.violations_of(conn, source_id)
