"""gRPC DeviceConfigService: devices get, watch and acknowledge their remote configuration.

A device (credential or device JWT) may only ask for its own config; an admin JWT may ask for
any. WatchConfig sends the newest version whenever it is newer than what the device knows; it
wakes on the NOTIFY that publishing sends (through the process's one `ConfigWatchHub` LISTEN
connection) and also looks every few seconds.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Iterator

import grpc
from psycopg_pool import ConnectionPool

from cloud.core.errors import AuthenticationError
from cloud.core.security import RevocationCache
from cloud.core.settings import Settings
from cloud.db.repositories import devices_config as repo
from cloud.ingest.config_hub import ConfigWatchHub
from cloud.ingest.grpc_server import Caller, authenticate
from protos.mallpulse.v1 import config_pb2, config_pb2_grpc

log = logging.getLogger(__name__)
_POLL_S = 2.0


def _message(row: repo.ConfigRow | None, device_id: str) -> config_pb2.DeviceConfig:
    if row is None:
        return config_pb2.DeviceConfig(device_id=device_id, version=0, config_json="")
    return config_pb2.DeviceConfig(
        device_id=row.device_id, version=row.version, config_json=row.config_json,
        sha256=row.sha256,
    )  # fmt: skip


class DeviceConfigServicer(config_pb2_grpc.DeviceConfigServiceServicer):
    """Serves device_configs to the devices they belong to."""

    def __init__(self, settings: Settings, pool: ConnectionPool) -> None:
        self.settings = settings
        self.pool = pool
        self.hub = ConfigWatchHub(settings.database_url)  # one LISTEN for all watches
        self.revocations = RevocationCache(settings.token_revocation_cache_s)

    def _caller(self, device_id: str, context: grpc.ServicerContext) -> Caller:
        try:
            caller = authenticate(
                self.settings,
                self.pool,
                context.invocation_metadata(),
                revocations=self.revocations,
            )
        except AuthenticationError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.detail)
        if caller.device_id is not None and caller.device_id != device_id:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "a device may read only its config")
        with self.pool.connection() as conn:
            if repo.device_store(conn, device_id) is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"device '{device_id}' is not registered")
        return caller

    def GetConfig(  # noqa: N802 - name fixed by the generated base class
        self, request: config_pb2.ConfigRequest, context: grpc.ServicerContext
    ) -> config_pb2.DeviceConfig:
        """The newest config (version 0 and empty JSON when none is assigned)."""
        self._caller(request.device_id, context)
        with self.pool.connection() as conn:
            return _message(repo.latest_config(conn, request.device_id), request.device_id)

    def WatchConfig(  # noqa: N802
        self, request: config_pb2.ConfigRequest, context: grpc.ServicerContext
    ) -> Iterator[config_pb2.DeviceConfig]:
        """Each newer version as it is published, until the caller cancels."""
        self._caller(request.device_id, context)
        known = request.known_version
        with self.hub.subscribe(request.device_id) as wake:  # before the first look: no gap
            while context.is_active():
                with self.pool.connection() as conn:
                    row = repo.latest_config(conn, request.device_id)
                if row is not None and row.version > known:
                    known = row.version
                    yield _message(row, request.device_id)
                with contextlib.suppress(queue.Empty):
                    wake.get(timeout=_POLL_S)  # a publish for this device (or the timeout)

    def ReportStatus(  # noqa: N802
        self, request: config_pb2.ConfigStatus, context: grpc.ServicerContext
    ) -> config_pb2.ConfigStatusAck:
        """Record whether the device applied a version."""
        self._caller(request.device_id, context)
        with self.pool.connection() as conn:
            found = repo.record_status(
                conn, device_id=request.device_id, version=request.version,
                accepted=request.accepted, field=request.field, reason=request.reason,
            )  # fmt: skip
        if not found:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no config version {request.version}")
        log.info("config status", extra={"device": request.device_id, "version": request.version,
                                         "accepted": request.accepted})  # fmt: skip
        return config_pb2.ConfigStatusAck()
