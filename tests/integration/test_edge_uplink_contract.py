"""The Uplink contract, run over every implementation against a real, restartable endpoint:
MqttUplink (a private Mosquitto with persistence) and GrpcUplink (a grpcio TelemetryIngest)."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, Protocol

import grpc
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import DeviceIdentity, GrpcConfig, MqttConfig
from edge.outbox import SqliteOutbox
from edge.uplink import Backoff, Uplink
from edge.uplink.grpc import GrpcUplink
from edge.uplink.mqtt import MqttUplink
from protos.mallpulse.v1 import ingest_pb2, ingest_pb2_grpc, telemetry_pb2
from tests.support.mqtt import ack_for

pytestmark = pytest.mark.integration

IDENT = DeviceIdentity(device_id="gw-contract", store_id="store-c")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def wait_until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Endpoint(Protocol):
    """A cloud endpoint that records what arrives and can be stopped and started again."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def received(self) -> list[int]: ...
    def uplink(self, outbox: SqliteOutbox) -> Uplink: ...


class MqttEndpoint:
    """Private Mosquitto (persistence on) plus a persistent-session subscriber."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.prefix = f"contract/{uuid.uuid4().hex[:8]}/mallpulse/v1"
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nuser {getpass.getuser()}\nlog_dest none\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: list[int] = []
        self.lock = threading.Lock()
        self.sub: mqtt.Client | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        wait_until(self._listening, 10, "mosquitto")
        if self.sub is None:
            self.sub = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=f"contract-sub-{uuid.uuid4().hex[:6]}",
                protocol=mqtt.MQTTv5,
            )
            self.sub.reconnect_delay_set(1, 1)
            self.sub.on_message = self._on_message
            self.sub.on_connect = lambda c, *_: c.subscribe(f"{self.prefix}/+/+/window", qos=1)
            subscribed = threading.Event()
            self.sub.on_subscribe = lambda *_: subscribed.set()
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            self.sub.connect("127.0.0.1", self.port, clean_start=False, properties=props)
            self.sub.loop_start()
            wait_until(subscribed.is_set, 10, "subscriber's SUBACK")

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.seen.append(telemetry_pb2.Envelope.FromString(bytes(msg.payload)).sequence)
        client.publish(*ack_for(msg.topic, bytes(msg.payload)), qos=1)  # as the ingest does

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        if self.sub is not None:
            self.sub.disconnect()
            self.sub.loop_stop()
        self.stop()

    def received(self) -> list[int]:
        with self.lock:
            return list(self.seen)

    def uplink(self, outbox: SqliteOutbox) -> Uplink:
        cfg = MqttConfig(port=self.port, topic_prefix=self.prefix, max_inflight=5)
        return MqttUplink(cfg, IDENT, outbox, backoff=Backoff(0.05, 0.3))


class _Ingest(ingest_pb2_grpc.TelemetryIngestServicer):
    def __init__(self, seen: list[int], lock: threading.Lock) -> None:
        self.seen, self.lock = seen, lock

    def StreamEnvelopes(self, request_iterator: Any, context: Any) -> Iterator[ingest_pb2.Ack]:
        for env in request_iterator:
            with self.lock:
                self.seen.append(env.sequence)
            yield ingest_pb2.Ack(
                device_id=env.device_id,
                sequence=env.sequence,
                status=ingest_pb2.ACK_STATUS_ACCEPTED,
            )


class GrpcEndpoint:
    """A grpcio TelemetryIngest server on a fixed loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.seen: list[int] = []
        self.lock = threading.Lock()
        self.server: grpc.Server | None = None

    def start(self) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        ingest_pb2_grpc.add_TelemetryIngestServicer_to_server(
            _Ingest(self.seen, self.lock), self.server
        )
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None).wait()
            self.server = None

    def close(self) -> None:
        self.stop()

    def received(self) -> list[int]:
        with self.lock:
            return list(self.seen)

    def uplink(self, outbox: SqliteOutbox) -> Uplink:
        cfg = GrpcConfig(target=f"127.0.0.1:{self.port}", deadline_s=2.0, keepalive_s=5)
        return GrpcUplink(cfg, IDENT, outbox, backoff=Backoff(0.05, 0.3), window=8)


@pytest.fixture(params=["mqtt", "grpc"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Endpoint]:
    if request.param == "mqtt" and not Path(MOSQUITTO).exists():
        pytest.fail(f"mosquitto binary not found at {MOSQUITTO}")
    ep: Endpoint = MqttEndpoint(tmp_path) if request.param == "mqtt" else GrpcEndpoint(tmp_path)
    ep.start()
    yield ep
    ep.close()


def first_seen(seqs: list[int]) -> list[int]:
    out: list[int] = []
    seen: set[int] = set()
    for s in seqs:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def window(i: int) -> telemetry_pb2.Envelope:
    env = telemetry_pb2.Envelope(device_id=IDENT.device_id, store_id=IDENT.store_id)
    env.window.frames_processed = i
    return env


def test_contract_drains_in_order_and_deletes_on_ack(endpoint: Endpoint, tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "o.db")
    outbox.put_many([window(i) for i in range(40)])
    uplink = endpoint.uplink(outbox)
    uplink.start()
    try:
        wait_until(lambda: outbox.stats().depth == 0, what="drain")
        for i in range(40, 50):  # produced while running: notify wakes the sender
            outbox.put(window(i))
            uplink.notify()
        wait_until(lambda: outbox.stats().depth == 0, what="second drain")
        wait_until(lambda: len(first_seen(endpoint.received())) == 50, what="arrival")
    finally:
        uplink.stop()
        outbox.close()
    assert first_seen(endpoint.received()) == list(range(1, 51))


def test_contract_endpoint_restart_mid_stream_loses_nothing(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    outbox = SqliteOutbox(tmp_path / "o.db")
    uplink = endpoint.uplink(outbox)
    uplink.start()
    try:
        for i in range(60):
            outbox.put(window(i))
            uplink.notify()
            if i == 25:
                endpoint.stop()
                endpoint.start()
        wait_until(lambda: outbox.stats().depth == 0, timeout=30, what="drain after restart")
        wait_until(lambda: len(first_seen(endpoint.received())) == 60, what="every envelope")
    finally:
        uplink.stop()
        outbox.close()
    assert first_seen(endpoint.received()) == list(range(1, 61))


def test_contract_stop_while_unreachable_keeps_the_outbox(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    endpoint.stop()
    outbox = SqliteOutbox(tmp_path / "o.db")
    outbox.put_many([window(i) for i in range(5)])
    before = set(threading.enumerate())
    uplink = endpoint.uplink(outbox)
    uplink.start()
    time.sleep(0.5)  # let it try (and fail) to connect for a while
    uplink.stop(timeout=5.0)
    left = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("uplink-")]
    assert left == []  # stop ended the uplink thread, not just gave up waiting for it
    assert not uplink.connected
    assert outbox.stats().depth == 5
    outbox.close()
