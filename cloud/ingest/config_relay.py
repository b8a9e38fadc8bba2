"""Remote config for MQTT devices: published configs go out as retained `config` messages, and
the devices' `config/status` verdicts are recorded.

Runs inside the ingest process next to the subscriber: a thread LISTENs for the NOTIFY that
publishing a config sends and publishes the newest document retained at QoS 1 on
`<prefix>/<store>/<device>/config` (the broker keeps it for a device that is offline).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg_pool import ConnectionPool

from cloud.db.repositories import devices_config as repo

log = logging.getLogger(__name__)


class ConfigRelay:
    """Pushes configs to MQTT and records verdicts; `publish` is the MQTT client's publish."""

    def __init__(
        self, dsn: str, pool: ConnectionPool, prefix: str, publish: Callable[..., None]
    ) -> None:
        self.dsn = dsn
        self.pool = pool
        self.prefix = prefix.rstrip("/")
        self._publish = publish
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()

    def start(self) -> None:
        """Start listening for published configs."""
        self._thread = threading.Thread(target=self._run, name="config-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def push(self, device_id: str) -> bool:
        """Publish the newest config of a device retained; False when it has none."""
        with self.pool.connection() as conn:
            store = repo.device_store(conn, device_id)
            row = repo.latest_config(conn, device_id)
        if store is None or row is None:
            return False
        topic = f"{self.prefix}/{store}/{device_id}/config"
        self._publish(topic, row.config_json.encode(), qos=1, retain=True)
        log.info("config pushed", extra={"device": device_id, "version": row.version})
        return True

    def record(self, device_id: str, payload: bytes) -> str | None:
        """Store a device's `config/status` verdict; returns why it was ignored, or None."""
        try:
            doc = json.loads(payload)
            version, accepted = int(doc["version"]), bool(doc["accepted"])
        except (ValueError, KeyError, TypeError, OverflowError) as exc:  # 1e999 overflows
            return f"not a config verdict: {exc}"
        if not 0 < version < 2**63:
            return f"no config version {version}"
        # PostgreSQL text holds no NUL character
        field, reason = (str(doc.get(k, "")).replace("\0", "") for k in ("field", "reason"))
        with self.pool.connection() as conn:
            found = repo.record_status(
                conn, device_id=device_id, version=version, accepted=accepted,
                field=field, reason=reason,
            )  # fmt: skip
        return None if found else f"no config version {version}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {repo.CONFIG_CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.push(note.payload)
            except psycopg.Error:
                self.listening.clear()
                log.warning("config relay lost the database; retrying", exc_info=True)
                self._stop.wait(2.0)
