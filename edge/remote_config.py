"""Remote config: validate a pushed EdgeConfig, apply it live, report accepted or rejected.

A document arrives as bytes (the retained MQTT `config` topic or a gRPC DeviceConfig). It is
checked for size, UTF-8, JSON and then the pydantic models; a rejection names the field and
the agent keeps running on the config it has. An accepted config is applied through the
`apply` callback (lines, zones and shelves swap live) and saved, so a restart keeps it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.config import ConfigError, EdgeConfig, parse_config
from edge.logging import message_id_var

log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 256 * 1024
# Sections that only take effect after a restart; geometry (cameras) is applied live.
RESTART_SECTIONS = ("detector", "tracker", "demographics", "window", "uplink", "outbox", "health")

ApplyFn = Callable[[EdgeConfig, EdgeConfig], list[str]]


@dataclass(frozen=True, slots=True)
class ConfigVerdict:
    """The reply on `config/status`: version, accepted, offending field and reason."""

    version: int
    accepted: bool
    field: str = ""
    reason: str = ""

    def to_json(self) -> bytes:
        """The JSON document published to the cloud."""
        return json.dumps(asdict(self), sort_keys=True).encode()


def _reject(version: int, field: str, reason: str) -> ConfigVerdict:
    return ConfigVerdict(version=version, accepted=False, field=field, reason=reason)


def decode_document(payload: bytes) -> tuple[dict[str, Any] | None, ConfigVerdict | None]:
    """The JSON object in a payload, or a rejection saying why it is not one."""
    if len(payload) > MAX_CONFIG_BYTES:
        return None, _reject(0, "", f"{len(payload)} bytes exceeds {MAX_CONFIG_BYTES}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        return None, _reject(0, "", "payload is not UTF-8 text")
    except (ValueError, RecursionError) as exc:
        return None, _reject(0, "", f"not valid JSON: {exc}"[:300])
    if not isinstance(data, dict):
        return None, _reject(0, "", f"expected a JSON object, got {type(data).__name__}")
    return data, None


def restart_sections(old: EdgeConfig, new: EdgeConfig) -> list[str]:
    """Top-level sections (and added or removed cameras) that changed but need a restart."""
    changed = [name for name in RESTART_SECTIONS if getattr(old, name) != getattr(new, name)]
    if {c.id for c in old.cameras} != {c.id for c in new.cameras}:
        changed.append("cameras (added or removed)")
    return changed


class RemoteConfig:
    """Holds the active config and decides on each pushed one; thread-safe."""

    def __init__(
        self, current: EdgeConfig, apply: ApplyFn, *, state_path: Path | None = None
    ) -> None:
        self._current = current
        self._apply = apply
        self._state_path = state_path
        self._lock = threading.Lock()
        self._last_digest = ""

    @property
    def current(self) -> EdgeConfig:
        """The active config."""
        return self._current

    def handle(self, payload: bytes) -> ConfigVerdict | None:
        """Decide on a pushed document; None when there is nothing to answer (repeat, empty)."""
        digest = hashlib.sha256(payload).hexdigest()
        token = message_id_var.set(f"config-{digest[:12]}")
        try:
            with self._lock:
                if not payload or digest == self._last_digest:
                    return None  # cleared retained topic or a redelivery of the same document
                self._last_digest = digest
                verdict = self._decide(payload)
            log.info(
                "config accepted" if verdict.accepted else "config rejected",
                extra={
                    "version": verdict.version,
                    "field": verdict.field,
                    "reason": verdict.reason,
                },
            )
            return verdict
        finally:
            message_id_var.reset(token)

    def _decide(self, payload: bytes) -> ConfigVerdict:
        data, rejection = decode_document(payload)
        if rejection is not None or data is None:
            return rejection or _reject(0, "", "empty document")
        raw_version = data.get("version", 0)
        version = raw_version if isinstance(raw_version, int) and raw_version >= 0 else 0
        try:
            new = parse_config(data, source="remote config")
        except ConfigError as exc:
            field, reason = exc.problems[0] if exc.problems else ("", str(exc))
            return _reject(version, field, reason)
        old = self._current
        if new.device != old.device:
            return _reject(version, "device", "the device identity cannot change remotely")
        if new.outbox.path != old.outbox.path:
            # A new path would strand every envelope still waiting in the current outbox.
            return _reject(version, "outbox.path", "the outbox location cannot change remotely")
        if new == old:
            return ConfigVerdict(version=version, accepted=True, reason="already active")
        if new.version <= old.version:
            return _reject(version, "version", f"must be greater than the active {old.version}")
        try:
            notes = self._apply(old, new)
        except Exception as exc:  # the apply step rolled back; keep the old config
            log.exception("applying the config failed")
            return _reject(version, "cameras", f"could not be applied: {exc}"[:300])
        self._current = new
        self._save(payload)
        reason = f"restart needed for: {', '.join(notes)}" if notes else ""
        return ConfigVerdict(version=version, accepted=True, reason=reason)

    def _save(self, payload: bytes) -> None:
        """Write the accepted document atomically (temp file, fsync, rename)."""
        if self._state_path is None:
            return
        tmp = self._state_path.with_suffix(".tmp")
        try:
            with tmp.open("wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self._state_path)
        except OSError as exc:
            log.error("cannot save the accepted config", extra={"error": str(exc)})


def load_saved(state_path: Path, local: EdgeConfig) -> EdgeConfig:
    """The saved remote config when it is newer than the local file and for this device."""
    try:
        data, rejection = decode_document(state_path.read_bytes())
    except FileNotFoundError:
        return local
    except OSError as exc:
        log.warning("saved remote config unreadable", extra={"error": str(exc)})
        return local
    if rejection is not None or data is None:
        return local
    try:
        saved = parse_config(data, source=str(state_path))
    except ConfigError as exc:
        log.warning("saved remote config invalid", extra={"error": str(exc)})
        return local
    if saved.device != local.device or saved.version <= local.version:
        return local
    return saved
