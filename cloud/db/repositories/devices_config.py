"""Remote device configuration documents: publish a version, read the latest, record verdicts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from cloud.core.errors import ConflictError

Conn = psycopg.Connection[Any]
CONFIG_CHANNEL = "mallpulse_device_config"


@dataclass(frozen=True)
class ConfigRow:
    """One published configuration version and the device's verdict on it."""

    device_id: str
    version: int
    config_json: str
    sha256: str
    created_at: datetime
    status: str | None
    status_at: datetime | None


def publish_config(
    conn: Conn, *, device_id: str, document: dict[str, Any], idempotency_key: str | None = None
) -> tuple[ConfigRow, bool]:
    """Store the next version of a device's config (the document's `version` is set to it) and
    NOTIFY watchers on commit; returns (row, created). With an idempotency key already used
    for this device, the version it created is returned (created False), or ConflictError if
    the document differs. The device row is locked so concurrent publishes serialise."""
    conn.execute("SELECT 1 FROM devices WHERE id = %s FOR UPDATE", (device_id,))
    asked_digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    if idempotency_key is not None:
        earlier = conn.execute(
            "SELECT device_id, version, config_json, sha256, created_at, status, status_at,"
            " request_sha256 FROM device_configs WHERE device_id = %s AND idempotency_key = %s",
            (device_id, idempotency_key),
        ).fetchone()
        if earlier is not None:
            if earlier[7] != asked_digest:
                raise ConflictError(
                    f"Idempotency-Key {idempotency_key!r} was used with a different document"
                )
            return ConfigRow(*earlier[:7]), False
    row = conn.execute(
        "SELECT coalesce(max(version), 0) FROM device_configs WHERE device_id = %s", (device_id,)
    ).fetchone()
    latest = int(row[0]) if row else 0
    asked = document.get("version")
    version = max(latest + 1, asked if isinstance(asked, int) else 0)
    text = json.dumps({**document, "version": version}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    created = conn.execute(
        "INSERT INTO device_configs (device_id, version, config_json, sha256, idempotency_key,"
        " request_sha256) VALUES (%s, %s, %s, %s, %s, %s) RETURNING created_at",
        (device_id, version, text, digest, idempotency_key, asked_digest),
    ).fetchone()
    conn.execute("SELECT pg_notify(%s, %s)", (CONFIG_CHANNEL, device_id))
    assert created is not None
    return ConfigRow(device_id, version, text, digest, created[0], None, None), True


def latest_config(conn: Conn, device_id: str) -> ConfigRow | None:
    """The newest config of a device, or None."""
    row = conn.execute(
        "SELECT device_id, version, config_json, sha256, created_at, status, status_at"
        " FROM device_configs WHERE device_id = %s ORDER BY version DESC LIMIT 1",
        (device_id,),
    ).fetchone()
    return ConfigRow(*row) if row else None


def record_status(
    conn: Conn, *, device_id: str, version: int, accepted: bool, field: str, reason: str
) -> bool:
    """Store the device's verdict on a version; False when that version does not exist."""
    verdict = "accepted" if accepted else f"rejected: {field}: {reason}".rstrip(": ")
    cur = conn.execute(
        "UPDATE device_configs SET status = %s, status_at = now()"
        " WHERE device_id = %s AND version = %s",
        (verdict[:500], device_id, version),
    )
    return cur.rowcount == 1


def device_store(conn: Conn, device_id: str) -> str | None:
    """The store of a device, or None when it is not registered."""
    row = conn.execute("SELECT store_id FROM devices WHERE id = %s", (device_id,)).fetchone()
    return str(row[0]) if row else None
