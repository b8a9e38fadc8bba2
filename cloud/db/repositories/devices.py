"""Stores and devices: registration, device credentials, presence, and the ACL listing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from cloud.core.errors import ConflictError, NotFoundError

Conn = psycopg.Connection[Any]
CREDENTIAL_PREFIX = "mpd_"
_MOSQUITTO_ITERATIONS = 101


@dataclass(frozen=True)
class DeviceRow:
    """A registered device."""

    id: str
    store_id: str
    name: str
    online: bool
    last_seen_at: datetime | None
    software_version: str | None


def mosquitto_hash(secret: str, *, salt: bytes | None = None) -> str:
    """The mosquitto_passwd ($7$, PBKDF2-SHA512) hash of a password."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, _MOSQUITTO_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${_MOSQUITTO_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def split_credential(credential: str) -> tuple[str, str] | None:
    """(device_id, secret) of a `mpd_<device>.<secret>` credential, or None."""
    if not credential.startswith(CREDENTIAL_PREFIX):
        return None
    device_id, dot, secret = credential[len(CREDENTIAL_PREFIX) :].rpartition(".")
    return (device_id, secret) if dot and device_id and secret else None


def create_store(conn: Conn, *, store_id: str, name: str, timezone: str) -> None:
    """Register a store; ConflictError when the id is taken."""
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO stores (id, name, timezone) VALUES (%s, %s, %s)",
                (store_id, name, timezone),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise ConflictError(f"store '{store_id}' already exists") from exc


def get_store(conn: Conn, store_id: str) -> tuple[str, str, str] | None:
    """(id, name, timezone) of a store, or None."""
    row = conn.execute(
        "SELECT id, name, timezone FROM stores WHERE id = %s", (store_id,)
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def list_stores(conn: Conn, only: frozenset[str] | None = None) -> list[tuple[str, str, str]]:
    """All stores (or those in `only`), by id."""
    rows = conn.execute(
        "SELECT id, name, timezone FROM stores WHERE %(all)s OR id = ANY(%(ids)s) ORDER BY id",
        {"all": only is None, "ids": sorted(only or ())},
    )
    return [(r[0], r[1], r[2]) for r in rows]


def create_device(conn: Conn, *, store_id: str, device_id: str, name: str = "") -> str:
    """Register a device and return its credential `mpd_<device>.<secret>` (shown once; the
    secret is stored only as a SHA-256 and as a mosquitto password hash)."""
    secret = secrets.token_urlsafe(24)
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO devices (id, store_id, name, secret_hash, mqtt_password_hash)"
                " VALUES (%s, %s, %s, %s, %s)",
                (device_id, store_id, name, _sha256(secret), mosquitto_hash(secret)),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise ConflictError(f"device '{device_id}' already exists") from exc
    except psycopg.errors.ForeignKeyViolation as exc:
        raise NotFoundError(f"store '{store_id}' does not exist") from exc
    return f"{CREDENTIAL_PREFIX}{device_id}.{secret}"


def authenticate_device(conn: Conn, credential: str) -> tuple[str, str] | None:
    """(device_id, store_id) for a valid device credential, else None."""
    parts = split_credential(credential)
    if parts is None:
        return None
    row = conn.execute(
        "SELECT store_id, secret_hash FROM devices WHERE id = %s", (parts[0],)
    ).fetchone()
    if row is None or row[1] is None or not hmac.compare_digest(row[1], _sha256(parts[1])):
        return None
    return parts[0], row[0]


def list_devices(conn: Conn, store_id: str) -> list[DeviceRow]:
    """The devices of a store."""
    rows = conn.execute(
        "SELECT id, store_id, name, online, last_seen_at, software_version FROM devices"
        " WHERE store_id = %s ORDER BY id",
        (store_id,),
    )
    return [DeviceRow(*r) for r in rows]


def set_online(conn: Conn, device_id: str, online: bool) -> None:
    """Presence from a transport session (a gRPC stream opening or closing)."""
    conn.execute(
        "UPDATE devices SET online = %s, status_at = now() WHERE id = %s", (online, device_id)
    )


def acl_entries(conn: Conn) -> list[tuple[str, str, str | None]]:
    """(device_id, store_id, mosquitto password hash) of every device, for the broker files."""
    rows = conn.execute("SELECT id, store_id, mqtt_password_hash FROM devices ORDER BY id")
    return [(r[0], r[1], r[2]) for r in rows]


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
