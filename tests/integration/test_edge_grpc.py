"""gRPC uplink against a real grpcio TelemetryIngest server on a loopback port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from edge.config import DeviceIdentity, EdgeConfig, GrpcConfig
from edge.outbox import SqliteOutbox
from edge.remote_config import RemoteConfig
from edge.uplink import Backoff
from edge.uplink.grpc import GrpcUplink
from protos.mallpulse.v1 import (
    config_pb2,
    config_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    telemetry_pb2,
)

pytestmark = pytest.mark.integration

IDENT = DeviceIdentity(device_id="gw-grpc-1", store_id="store-g")
LINE = [[0.0, 0.0], [1.0, 1.0]]


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Ingest(ingest_pb2_grpc.TelemetryIngestServicer):
    """Stores envelopes by (device, sequence); DUPLICATE for repeats, REJECTED when marked."""

    def __init__(self) -> None:
        self.received: list[tuple[str, int]] = []
        self.stored: dict[tuple[str, int], telemetry_pb2.Envelope] = {}
        self.lock = threading.Lock()
        self.reject_camera = "reject-me"
        self.silent_streams = 0  # this many streams get no Ack at all (a stuck server)
        self.streams = 0

    def StreamEnvelopes(self, request_iterator: Any, context: Any) -> Iterator[ingest_pb2.Ack]:
        with self.lock:
            self.streams += 1
            silent = self.streams <= self.silent_streams
        for env in request_iterator:
            if silent:
                continue
            key = (env.device_id, env.sequence)
            with self.lock:
                self.received.append(key)
                if env.camera_id == self.reject_camera:
                    status = ingest_pb2.ACK_STATUS_REJECTED
                elif key in self.stored:
                    status = ingest_pb2.ACK_STATUS_DUPLICATE
                else:
                    self.stored[key] = env
                    status = ingest_pb2.ACK_STATUS_ACCEPTED
            yield ingest_pb2.Ack(device_id=env.device_id, sequence=env.sequence, status=status)


class ConfigService(config_pb2_grpc.DeviceConfigServiceServicer):
    """Streams the documents put into `docs`; records the reported statuses."""

    def __init__(self) -> None:
        self.docs: list[config_pb2.DeviceConfig] = []
        self.statuses: list[config_pb2.ConfigStatus] = []

    def WatchConfig(self, request: Any, context: Any) -> Iterator[config_pb2.DeviceConfig]:
        sent = 0
        while context.is_active():
            while sent < len(self.docs):
                yield self.docs[sent]
                sent += 1
            time.sleep(0.02)

    def GetConfig(self, request: Any, context: Any) -> config_pb2.DeviceConfig:
        return self.docs[-1] if self.docs else config_pb2.DeviceConfig()

    def ReportStatus(self, request: Any, context: Any) -> config_pb2.ConfigStatusAck:
        self.statuses.append(request)
        return config_pb2.ConfigStatusAck()


class Server:
    """A grpcio server on a fixed loopback port that can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.ingest = Ingest()
        self.configs = ConfigService()
        self.server: grpc.Server | None = None

    def start(self) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        ingest_pb2_grpc.add_TelemetryIngestServicer_to_server(self.ingest, self.server)
        config_pb2_grpc.add_DeviceConfigServiceServicer_to_server(self.configs, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None).wait()
            self.server = None


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.start()
    yield s
    s.stop()


def window(i: int, camera: str = "c1") -> telemetry_pb2.Envelope:
    env = telemetry_pb2.Envelope(device_id=IDENT.device_id, store_id=IDENT.store_id)
    env.camera_id = camera
    env.window.frames_processed = i
    return env


def make_uplink(outbox: SqliteOutbox, port: int, **kw: Any) -> GrpcUplink:
    cfg = GrpcConfig(target=f"127.0.0.1:{port}", deadline_s=2.0, keepalive_s=5)
    return GrpcUplink(cfg, IDENT, outbox, backoff=Backoff(0.05, 0.3), window=8, **kw)


def test_stream_drains_outbox_in_order_with_acks(server: Server, tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    outbox.put_many([window(i) for i in range(100)])
    uplink = make_uplink(outbox, server.port)
    uplink.start()
    try:
        wait_until(lambda: outbox.stats().depth == 0, what="drain")
    finally:
        uplink.stop()
        outbox.close()
    assert [seq for _, seq in server.ingest.received] == list(range(1, 101))
    assert uplink.stats.acked == 100


def test_server_down_then_back_every_envelope_arrives_once(server: Server, tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    uplink = make_uplink(outbox, server.port)
    uplink.start()
    try:
        outbox.put_many([window(i) for i in range(20)])
        uplink.notify()
        wait_until(lambda: len(server.ingest.stored) == 20, what="first batch")
        server.stop()
        for i in range(20, 80):
            outbox.put(window(i))
            uplink.notify()
        wait_until(lambda: not uplink.connected, what="uplink to notice")
        server.start()
        wait_until(lambda: outbox.stats().depth == 0, timeout=20, what="drain after restart")
    finally:
        uplink.stop()
        outbox.close()
    stored = sorted(seq for _, seq in server.ingest.stored)
    assert stored == list(range(1, 81))
    first_seen: list[int] = []
    for _, seq in server.ingest.received:
        if seq not in first_seen:
            first_seen.append(seq)
    assert first_seen == list(range(1, 81))
    assert uplink.stats.connects >= 2


def test_missing_acks_hit_the_deadline_and_the_stream_is_restarted(
    server: Server, tmp_path: Path
) -> None:
    server.ingest.silent_streams = 1
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    outbox.put_many([window(i) for i in range(10)])
    cfg = GrpcConfig(target=f"127.0.0.1:{server.port}", deadline_s=0.5, keepalive_s=5)
    uplink = GrpcUplink(cfg, IDENT, outbox, backoff=Backoff(0.05, 0.3), window=8)
    uplink.start()
    try:
        wait_until(lambda: outbox.stats().depth == 0, what="drain on the second stream")
    finally:
        uplink.stop()
        outbox.close()
    assert server.ingest.streams >= 2
    assert sorted(seq for _, seq in server.ingest.stored) == list(range(1, 11))
    assert uplink.stats.connects >= 2


def test_rejected_envelope_is_deleted_and_counted(server: Server, tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    outbox.put_many([window(0), window(1, camera="reject-me"), window(2)])
    uplink = make_uplink(outbox, server.port)
    uplink.start()
    try:
        wait_until(lambda: outbox.stats().depth == 0, what="drain")
    finally:
        uplink.stop()
        outbox.close()
    assert sorted(seq for _, seq in server.ingest.stored) == [1, 3]
    assert (uplink.stats.acked, uplink.stats.rejected) == (2, 1)


def test_remote_config_over_grpc_is_applied_and_reported(server: Server, tmp_path: Path) -> None:
    base = {
        "device": IDENT.model_dump(),
        "cameras": [
            {"id": "c1", "source": "x", "lines": [{"id": "a", "points": [[0, 0], [1, 1]]}]}
        ],
        "outbox": {"path": str(tmp_path / "outbox.db")},
    }
    applied: list[EdgeConfig] = []

    def apply(old: EdgeConfig, new: EdgeConfig) -> list[str]:
        applied.append(new)
        return []

    remote = RemoteConfig(EdgeConfig.model_validate({**base, "version": 1}), apply)

    def decide(payload: bytes) -> bytes | None:
        verdict = remote.handle(payload)
        return verdict.to_json() if verdict else None

    outbox = SqliteOutbox(tmp_path / "outbox.db")
    uplink = make_uplink(outbox, server.port, on_config=decide, config_version=lambda: 1)
    uplink.start()
    good = json.dumps({**base, "version": 2})
    bad = json.dumps({**base, "version": 3, "cameras": [{"id": "c1"}]})
    try:
        server.configs.docs.append(config_pb2.DeviceConfig(version=2, config_json=good))
        server.configs.docs.append(config_pb2.DeviceConfig(version=3, config_json=bad))
        wait_until(lambda: len(server.configs.statuses) == 2, what="two status reports")
    finally:
        uplink.stop()
        outbox.close()
    ok, rejected = server.configs.statuses
    assert (ok.version, ok.accepted) == (2, True)
    assert (rejected.version, rejected.accepted, rejected.field) == (3, False, "cameras[0].source")
    assert [c.version for c in applied] == [2]
    assert remote.current.version == 2


def test_a_failing_config_handler_does_not_end_the_config_watch(
    server: Server, tmp_path: Path
) -> None:
    calls: list[bytes] = []

    def decide(payload: bytes) -> bytes | None:
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("a bug in the handler")
        return b'{"accepted": true, "field": "", "reason": "", "version": 2}'

    outbox = SqliteOutbox(tmp_path / "outbox.db")
    uplink = make_uplink(outbox, server.port, on_config=decide, config_version=lambda: 1)
    uplink.start()
    try:
        server.configs.docs.append(config_pb2.DeviceConfig(version=2, config_json="{}"))
        wait_until(lambda: len(server.configs.statuses) == 1, what="a status after the failure")
    finally:
        uplink.stop()
        outbox.close()
    assert calls[:2] == [b"{}", b"{}"]  # the watch was opened again and the document redelivered
    assert (server.configs.statuses[0].version, server.configs.statuses[0].accepted) == (2, True)
