"""gRPC ingest: TelemetryIngest.StreamEnvelopes, one Ack per envelope after the commit.

Callers authenticate with `authorization: Bearer <token>` metadata: a device credential
(`mpd_<device>.<secret>`) or a JWT with role `device` (subject = device id) may send only that
device's envelopes; a JWT with role `admin` may relay envelopes of any registered device
(simulators, backfills). Envelopes of another device are rejected and dead-lettered.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from psycopg_pool import ConnectionPool

from cloud.core.errors import AuthenticationError
from cloud.core.security import RevocationCache, Role, decode_token
from cloud.core.settings import Settings
from cloud.db.repositories import devices, telemetry
from cloud.db.repositories.auth import is_token_revoked
from cloud.ingest.errors import IngestError
from cloud.ingest.service import IngestService, Status
from cloud.ingest.validate import Incoming
from protos.mallpulse.v1 import config_pb2_grpc, ingest_pb2, ingest_pb2_grpc, telemetry_pb2

log = logging.getLogger(__name__)
_END = object()
_ACK = {
    Status.ACCEPTED: ingest_pb2.ACK_STATUS_ACCEPTED,
    Status.DUPLICATE: ingest_pb2.ACK_STATUS_DUPLICATE,
    Status.REJECTED: ingest_pb2.ACK_STATUS_REJECTED,
}


@dataclass(frozen=True)
class Caller:
    """Who opened the stream: a device (envelopes of that device only) or a relay."""

    device_id: str | None
    label: str


def authenticate(
    settings: Settings, pool: ConnectionPool, metadata: Any, *, revocations: RevocationCache
) -> Caller:
    """The caller of a stream from its `authorization` metadata; AuthenticationError if none.

    A bearer token revoked with `mallpulse cloud token revoke` is refused here as by the HTTP API
    (the answer is cached for `token_revocation_cache_s`)."""
    header = dict((k.lower(), v) for k, v in metadata or ()).get("authorization", "")
    scheme, _, token = str(header).partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("send metadata 'authorization: Bearer <device credential>'")
    if devices.split_credential(token) is not None:
        with pool.connection() as conn:
            found = devices.authenticate_device(conn, token)
        if found is None:
            raise AuthenticationError("unknown device or wrong device secret")
        return Caller(found[0], f"device:{found[0]}")
    principal = decode_token(settings, token)
    if principal.token_id is not None:

        def lookup(jti: str) -> bool:
            with pool.connection() as conn:
                return is_token_revoked(conn, jti)

        if revocations.is_revoked(principal.token_id, lookup):
            raise AuthenticationError("the bearer token has been revoked; request a new one")
    if principal.role is Role.DEVICE:
        return Caller(principal.subject, f"device:{principal.subject}")
    if principal.role is Role.ADMIN:
        return Caller(None, f"relay:{principal.subject}")
    raise AuthenticationError(f"role {principal.role.value} may not send telemetry")


class TelemetryIngestServicer(ingest_pb2_grpc.TelemetryIngestServicer):
    """Micro-batches each stream: waits for one envelope, takes what else has arrived."""

    def __init__(self, settings: Settings, service: IngestService, batch_size: int = 256) -> None:
        self.settings = settings
        self.service = service
        self.batch_size = batch_size
        self.revocations = RevocationCache(settings.token_revocation_cache_s)

    def StreamEnvelopes(  # noqa: N802 - name fixed by the generated base class
        self, request_iterator: Iterator[telemetry_pb2.Envelope], context: grpc.ServicerContext
    ) -> Iterator[ingest_pb2.Ack]:
        """Envelopes in, one Ack per envelope out, each sent after its batch commits."""
        try:
            caller = authenticate(
                self.settings,
                self.service.pool,
                context.invocation_metadata(),
                revocations=self.revocations,
            )
        except AuthenticationError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.detail)
        inbox: queue.Queue[object] = queue.Queue()
        threading.Thread(target=_pump, args=(request_iterator, inbox), daemon=True).start()
        opened = self._opened(caller)
        try:
            yield from self._serve(caller, inbox, context)
        finally:
            self._closed(caller, opened)

    def _serve(
        self, caller: Caller, inbox: queue.Queue[object], context: grpc.ServicerContext
    ) -> Iterator[ingest_pb2.Ack]:
        while True:
            batch = _take(inbox, self.batch_size)
            envelopes = [e for e in batch if isinstance(e, telemetry_pb2.Envelope)]
            if envelopes:
                items = [Incoming(e.SerializeToString(), "grpc", device_id=caller.device_id)
                         for e in envelopes]  # fmt: skip
                try:
                    outcomes = self.service.ingest(items)
                except IngestError as exc:
                    context.abort(grpc.StatusCode.UNAVAILABLE, exc.detail)
                for env, out in zip(envelopes, outcomes, strict=True):
                    yield ingest_pb2.Ack(
                        device_id=env.device_id, sequence=env.sequence, status=_ACK[out.status],
                        reason=out.reason,
                    )  # fmt: skip
            if len(batch) != len(envelopes):
                return  # the client half-closed (or the stream broke)

    def _opened(self, caller: Caller) -> datetime | None:
        if caller.device_id is None:
            return None
        try:
            with self.service.pool.connection() as conn:
                return telemetry.stream_opened(conn, caller.device_id)
        except Exception:  # presence is best effort; never fail the stream for it
            log.warning("could not record presence", exc_info=True)
            return None

    def _closed(self, caller: Caller, opened: datetime | None) -> None:
        if caller.device_id is None or opened is None:
            return
        try:
            with self.service.pool.connection() as conn:
                telemetry.stream_closed(conn, caller.device_id, opened)
        except Exception:  # presence is best effort; never fail the stream for it
            log.warning("could not record presence", exc_info=True)


def _pump(requests: Iterator[telemetry_pb2.Envelope], inbox: queue.Queue[object]) -> None:
    try:
        for env in requests:
            inbox.put(env)
    except Exception:  # cancelled or broken stream: the serving loop just ends
        log.debug("request stream ended with an error", exc_info=True)
    finally:
        inbox.put(_END)


def _take(inbox: queue.Queue[object], limit: int) -> list[object]:
    batch = [inbox.get()]
    while len(batch) < limit and batch[-1] is not _END:
        try:
            batch.append(inbox.get_nowait())
        except queue.Empty:
            break
    return batch


def build_server(
    settings: Settings, service: IngestService, *, bind: str | None = None, workers: int = 64
) -> tuple[grpc.Server, int]:
    """The gRPC server (TelemetryIngest and DeviceConfigService, not yet started) and the
    port it bound."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"))
    ingest_pb2_grpc.add_TelemetryIngestServicer_to_server(
        TelemetryIngestServicer(settings, service), server
    )
    from cloud.ingest.config_service import DeviceConfigServicer  # it imports this module

    config_pb2_grpc.add_DeviceConfigServiceServicer_to_server(
        DeviceConfigServicer(settings, service.pool), server
    )
    port = server.add_insecure_port(bind or settings.grpc_bind)
    if port == 0:
        raise IngestError(f"cannot bind the gRPC server to {bind or settings.grpc_bind}")
    return server, port
