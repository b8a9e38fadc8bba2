"""gRPC uplink: drains the outbox over the TelemetryIngest bidirectional stream.

Only the uplink thread touches the outbox: it peeks entries into the request queue of the
current stream (at most `window` unacknowledged), and deletes an entry when its Ack
(ACCEPTED, DUPLICATE, or REJECTED: dead-lettered by the cloud) comes back through the reader
thread. A stream that fails, or an Ack missing for longer than the deadline, ends the stream;
the next one (after backoff with jitter) resends every unacknowledged entry from the outbox.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from edge.config import DeviceIdentity, GrpcConfig
from edge.outbox import SqliteOutbox
from edge.uplink.base import Backoff, UplinkError, UplinkStats
from edge.uplink.grpc_config import ConfigDecider, GrpcConfigWatcher
from protos.mallpulse.v1 import ingest_pb2, ingest_pb2_grpc, telemetry_pb2

log = logging.getLogger(__name__)

_DELETE = (ingest_pb2.ACK_STATUS_ACCEPTED, ingest_pb2.ACK_STATUS_DUPLICATE)
_END = object()  # marks the end of a request or response stream


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UplinkError(f"uplink.grpc.tls: cannot read {path}: {exc.strerror}") from exc


def build_channel(config: GrpcConfig) -> grpc.Channel:
    """A channel with keepalive pings and, when configured, (mutual) TLS."""
    options = [
        ("grpc.keepalive_time_ms", config.keepalive_s * 1000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 30_000),
    ]
    if config.tls is None:
        return grpc.insecure_channel(config.target, options=options)
    if config.tls.insecure_skip_verify:
        raise UplinkError("uplink.grpc.tls.insecure_skip_verify is not supported over gRPC")
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(config.tls.ca_file),
        private_key=_read(config.tls.key_file),
        certificate_chain=_read(config.tls.cert_file),
    )
    return grpc.secure_channel(config.target, creds, options=options)


@dataclass
class _Stream:
    """State of one StreamEnvelopes call."""

    requests: queue.Queue[object] = field(default_factory=queue.Queue)
    acks: queue.Queue[object] = field(default_factory=queue.Queue)
    inflight: dict[int, float] = field(default_factory=dict)  # sequence -> monotonic send time
    cursor: int = 0
    call: grpc.Future | None = None

    def request_iter(self) -> Iterator[object]:
        """The request iterator handed to gRPC: yields queued envelopes until _END."""
        while True:
            item = self.requests.get()
            if item is _END:
                return
            yield item


class GrpcUplink:
    """Outbox -> TelemetryIngest.StreamEnvelopes with per-envelope acks and reconnects."""

    def __init__(
        self,
        config: GrpcConfig,
        identity: DeviceIdentity,
        outbox: SqliteOutbox,
        *,
        backoff: Backoff | None = None,
        window: int = 64,
        on_config: ConfigDecider | None = None,
        config_version: Callable[[], int] = lambda: 0,
    ) -> None:
        self.config = config
        self.identity = identity
        self.outbox = outbox
        self.window = window
        self.stats = UplinkStats()
        self._backoff = backoff or Backoff()
        self._channel = build_channel(config)
        self._stub = ingest_pb2_grpc.TelemetryIngestStub(self._channel)
        self._metadata: list[tuple[str, str]] = [("x-device-id", identity.device_id)]
        if config.token is not None:
            self._metadata.append(("authorization", f"Bearer {config.token.get_secret_value()}"))
        self._watcher = (
            GrpcConfigWatcher(
                self._channel,
                config,
                identity,
                on_config,
                known_version=config_version,
                backoff=Backoff(self._backoff.initial_s, self._backoff.max_s),
            )
            if on_config is not None
            else None
        )
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        """Whether a stream is open now."""
        return self._connected.is_set()

    def start(self) -> None:
        """Start the uplink thread."""
        if self._thread is not None:
            raise UplinkError("the gRPC uplink is already started")
        self._thread = threading.Thread(target=self._run, name="uplink-grpc", daemon=True)
        self._thread.start()
        if self._watcher is not None:
            self._watcher.start()

    def notify(self) -> None:
        """New entries are in the outbox."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Half-close the stream (the server acks what it got), then close the channel."""
        self._stop.set()
        self._wake.set()
        if self._watcher is not None:
            self._watcher.stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._channel.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                grpc.channel_ready_future(self._channel).result(timeout=self.config.deadline_s)
            except grpc.FutureTimeoutError:
                delay = self._backoff.next_delay()
                log.warning(
                    "grpc server not reachable",
                    extra={"target": self.config.target, "retry_in_s": round(delay, 2)},
                )
                self._stop.wait(delay)
                continue
            try:
                self._run_stream()
            except Exception:  # outbox I/O error or a bug: log, back off, open a new stream
                log.exception("grpc uplink stream failed")
            if not self._stop.is_set():
                self._stop.wait(self._backoff.next_delay())

    def _run_stream(self) -> None:
        stream = _Stream()
        call = self._stub.StreamEnvelopes(stream.request_iter(), metadata=self._metadata)
        stream.call = call
        reader = threading.Thread(
            target=self._read_acks, args=(call, stream.acks), name="uplink-grpc-acks", daemon=True
        )
        reader.start()
        self._connected.set()
        self.stats.connects += 1
        log.info("grpc stream open", extra={"target": self.config.target})
        try:
            self._serve(stream)
        finally:
            self._connected.clear()
            stream.requests.put(_END)
            self._finish(stream, reader)

    def _serve(self, stream: _Stream) -> None:
        """Fill the window and apply acks until the stream ends, stalls or stop is asked."""
        while not self._stop.is_set():
            if not self._apply_acks(stream, wait=0.05):
                return
            self._fill(stream)
            if stream.inflight:
                oldest = min(stream.inflight.values())
                if time.monotonic() - oldest > self.config.deadline_s:
                    log.warning("grpc ack deadline exceeded; restarting the stream")
                    if stream.call is not None:
                        stream.call.cancel()
                    return

    def _fill(self, stream: _Stream) -> None:
        room = self.window - len(stream.inflight)
        if room <= 0:
            return
        if not self._wake.is_set() and stream.inflight:
            return  # nothing new was announced; acks will make room and we look again
        self._wake.clear()
        entries = self.outbox.peek(after=stream.cursor, limit=room)
        now = time.monotonic()
        for entry in entries:
            stream.inflight[entry.sequence] = now
            stream.cursor = entry.sequence
            stream.requests.put(telemetry_pb2.Envelope.FromString(entry.payload))
            self.stats.sent += 1
        if len(entries) == room:
            self._wake.set()

    def _apply_acks(self, stream: _Stream, *, wait: float) -> bool:
        """Delete acknowledged entries; False once the response stream has ended."""
        try:
            item = stream.acks.get(timeout=wait)
        except queue.Empty:
            self._wake.set()  # idle: poll the outbox for entries from other writers
            return True
        done: list[int] = []
        alive = True
        while True:
            if item is _END:
                alive = False
            elif isinstance(item, ingest_pb2.Ack) and self._classify(item, stream):
                done.append(item.sequence)
            try:
                item = stream.acks.get_nowait()
            except queue.Empty:
                break
        if done:
            self.outbox.ack(done)
            self._backoff.reset()
        return alive

    def _classify(self, ack: ingest_pb2.Ack, stream: _Stream) -> bool:
        """Whether the acked entry may be deleted; counts and logs the outcome."""
        if ack.status in _DELETE:
            stream.inflight.pop(ack.sequence, None)
            self.stats.acked += 1
            return True
        if ack.status == ingest_pb2.ACK_STATUS_REJECTED:
            stream.inflight.pop(ack.sequence, None)
            self.stats.rejected += 1
            log.error(
                "cloud rejected envelope (dead-lettered there)",
                extra={"sequence": ack.sequence, "reason": ack.reason},
            )
            return True
        log.warning("ack without status ignored", extra={"sequence": ack.sequence})
        return False

    def _read_acks(self, call: grpc.Future, acks: queue.Queue[object]) -> None:
        try:
            for ack in call:
                acks.put(ack)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else ""
            if not self._stop.is_set():
                log.warning("grpc stream failed", extra={"code": str(code), "details": details})
        finally:
            acks.put(_END)

    def _finish(self, stream: _Stream, reader: threading.Thread) -> None:
        """Collect the acks of a half-closed stream, cancelling it if the server lingers."""
        deadline = time.monotonic() + self.config.deadline_s
        while reader.is_alive() and time.monotonic() < deadline:
            if not self._apply_acks(stream, wait=0.05):
                break
        if reader.is_alive() and stream.call is not None:
            stream.call.cancel()
        reader.join(1.0)
        self._apply_acks(stream, wait=0.0)
        self.stats.disconnects += 1
