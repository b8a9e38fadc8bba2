"""MQTT uplink against a real Mosquitto that the tests stop and restart (own process and port).

The machine's shared broker on 1883 is never touched: each test module starts its own
`mosquitto` with persistence in a temporary folder on a free port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import DeviceIdentity, EdgeConfig, MqttConfig
from edge.health import HealthCollector
from edge.outbox import OutboxError, SqliteOutbox
from edge.uplink import Backoff
from edge.uplink.mqtt import MqttUplink
from edge.uplink.session import UplinkSession
from protos.mallpulse.v1 import telemetry_pb2
from tests.support.mqtt import Broker, ack_for, wait_until

pytestmark = pytest.mark.integration

IDENT = DeviceIdentity(device_id="gw-test-1", store_id="store-t")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Collector:
    """A cloud-side subscriber with a persistent session; records every message and, as the
    ingest does after its commit, acknowledges each envelope on the device's `ack` topic."""

    def __init__(self, port: int, prefix: str, *, ack: bool = True) -> None:
        self.ack = ack
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"collector-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
        self.client.max_inflight_messages_set(1000)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        # messages published before the SUBACK would never reach this subscriber
        assert subscribed.wait(10), "collector: no SUBACK"

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
        if self.ack and msg.topic.endswith(("/window", "/health")):
            client.publish(*ack_for(msg.topic, bytes(msg.payload)), qos=1)

    def envelopes(self, kind: str = "window") -> list[telemetry_pb2.Envelope]:
        with self.lock:
            msgs = list(self.messages)
        return [telemetry_pb2.Envelope.FromString(p) for t, p, _ in msgs if t.endswith("/" + kind)]

    def first_seen_sequences(self, kind: str = "window") -> list[int]:
        """Sequences in arrival order after dedupe by (device, sequence)."""
        seen: set[tuple[str, int]] = set()
        out = []
        for env in self.envelopes(kind):
            key = (env.device_id, env.sequence)
            if key not in seen:
                seen.add(key)
                out.append(env.sequence)
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def window(i: int) -> telemetry_pb2.Envelope:
    env = telemetry_pb2.Envelope(device_id=IDENT.device_id, store_id=IDENT.store_id, camera_id="c1")
    env.window.frames_processed = i
    return env


@pytest.fixture
def prefix() -> str:
    return f"mptest/{uuid.uuid4().hex[:10]}/mallpulse/v1"


def make_uplink(outbox: SqliteOutbox, port: int, prefix: str, **kw: Any) -> MqttUplink:
    cfg = MqttConfig(host="127.0.0.1", port=port, topic_prefix=prefix, max_inflight=5)
    return MqttUplink(cfg, IDENT, outbox, backoff=Backoff(0.05, 0.3), software_version="t", **kw)


def test_outage_then_recovery_delivers_everything_once_in_order(
    broker: Broker, tmp_path: Path, prefix: str
) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    collector = Collector(broker.port, prefix)
    uplink = make_uplink(outbox, broker.port, prefix)
    uplink.start()
    try:
        outbox.put_many([window(i) for i in range(30)])
        uplink.notify()
        wait_until(lambda: len(collector.first_seen_sequences()) == 30, what="first batch")
        broker.stop()
        wait_until(lambda: not uplink.connected, what="uplink to notice the outage")
        for i in range(30, 90):  # aggregates produced while the uplink is down
            outbox.put(window(i))
            uplink.notify()
        assert outbox.stats().depth >= 60
        broker.start()
        wait_until(lambda: outbox.stats().depth == 0, timeout=20, what="outbox to drain")
        wait_until(lambda: len(collector.first_seen_sequences()) == 90, what="all envelopes")
    finally:
        uplink.stop()
        collector.close()
        outbox.close()
    assert collector.first_seen_sequences() == list(range(1, 91))


def test_broker_restart_mid_stream_loses_nothing(
    broker: Broker, tmp_path: Path, prefix: str
) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    collector = Collector(broker.port, prefix)
    uplink = make_uplink(outbox, broker.port, prefix)
    uplink.start()
    stop = threading.Event()

    def produce() -> None:
        for i in range(300):
            if stop.is_set():
                return
            outbox.put(window(i))
            uplink.notify()
            time.sleep(0.005)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: len(collector.envelopes()) >= 40, what="stream to start")
        broker.stop()  # restart while envelopes are in flight
        broker.start()
        producer.join(30)
        wait_until(lambda: outbox.stats().depth == 0, timeout=20, what="outbox to drain")
        wait_until(lambda: len(collector.first_seen_sequences()) == 300, what="every envelope")
    finally:
        stop.set()
        uplink.stop()
        collector.close()
        outbox.close()
    assert collector.first_seen_sequences() == list(range(1, 301))
    assert uplink.stats.connects >= 2


def test_outbox_full_drops_oldest_counts_them_and_keeps_running(
    broker: Broker, tmp_path: Path, prefix: str
) -> None:
    collector = Collector(broker.port, prefix)  # the cloud's session exists before the outage
    broker.stop()  # uplink down from the start
    outbox = SqliteOutbox(tmp_path / "outbox.db", max_entries=10)
    uplink = make_uplink(outbox, broker.port, prefix)
    uplink.start()
    health = HealthCollector(
        IDENT,
        outbox_stats=outbox.stats,
        cameras=list,
        software_version="t",
        models=[],
        config_version=lambda: 1,
    )
    try:
        for i in range(25):
            outbox.put(window(i))
        stats = outbox.stats()
        assert (stats.depth, stats.dropped_total) == (10, 15)
        assert [e.sequence for e in outbox.peek(limit=100)] == list(range(16, 26))
        outbox.put(health.envelope())  # health reports the drops (and is itself stored)
        broker.start()
        wait_until(lambda: outbox.stats().depth == 0, timeout=20, what="drain")
        wait_until(lambda: len(collector.first_seen_sequences()) == 9, what="survivors")
        wait_until(lambda: bool(collector.envelopes("health")), what="health")
    finally:
        uplink.stop()
        outbox.close()
        collector.close()
    # 26 puts into 10 slots: the health envelope (26) pushed window 16 out as well.
    assert collector.first_seen_sequences() == list(range(17, 26))
    reported = collector.envelopes("health")[0]
    assert reported.sequence == 26
    assert reported.health.outbox_dropped_total == 15
    assert reported.health.outbox_depth == 10


def test_status_online_and_last_will_offline(broker: Broker, tmp_path: Path, prefix: str) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    uplink = make_uplink(outbox, broker.port, prefix)
    uplink.start()
    collector = Collector(broker.port, prefix)
    try:
        wait_until(lambda: bool(statuses(collector)), what="status message")
        assert statuses(collector)[-1].online is True
        # An unclean end (socket dropped without DISCONNECT) makes the broker send the will.
        sock = uplink._client.socket()  # the raw TCP socket paho uses
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        wait_until(lambda: any(not s.online for s in statuses(collector)), what="last will")
        wait_until(lambda: statuses(collector)[-1].online, what="online again after reconnect")
    finally:
        uplink.stop()
        collector.close()
        outbox.close()
    last = statuses(collector)
    assert last[-1].device_id == IDENT.device_id


def statuses(collector: Collector) -> list[telemetry_pb2.DeviceStatus]:
    with collector.lock:
        msgs = list(collector.messages)
    return [telemetry_pb2.DeviceStatus.FromString(p) for t, p, _ in msgs if t.endswith("/status")]


def test_uplink_session_for_replays_stores_sends_and_drains(
    broker: Broker, tmp_path: Path, prefix: str
) -> None:
    collector = Collector(broker.port, prefix)
    config = EdgeConfig.model_validate(
        {
            "device": IDENT.model_dump(),
            "cameras": [{"id": "c1", "source": "video.mp4"}],
            "uplink": {"mqtt": {"port": broker.port, "topic_prefix": prefix}},
            "outbox": {"path": str(tmp_path / "outbox.db")},
        }
    )
    try:
        with UplinkSession(config, drain_timeout_s=10) as session:
            bare = [
                telemetry_pb2.Envelope(camera_id="c1", window=telemetry_pb2.WindowReport())
                for _ in range(12)
            ]
            assert session.store(bare) == list(range(1, 13))
        wait_until(lambda: len(collector.first_seen_sequences()) == 12, what="replayed windows")
    finally:
        collector.close()
    envs = collector.envelopes()
    assert {(e.device_id, e.store_id, e.schema_version) for e in envs} == {
        (IDENT.device_id, IDENT.store_id, 1)
    }
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    assert outbox.stats().depth == 0
    outbox.close()
    assert statuses(collector) == []  # a replay must not speak for the daemon's presence


class FlakyOutbox(SqliteOutbox):
    """The real outbox, whose first deletions fail as if the disk had a hiccup."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def ack_ranges(self, ranges: Any) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise OutboxError("disk I/O error (injected)")
        return super().ack_ranges(ranges)


def test_outbox_errors_do_not_stop_the_uplink(broker: Broker, tmp_path: Path, prefix: str) -> None:
    collector = Collector(broker.port, prefix)
    outbox = FlakyOutbox(tmp_path / "outbox.db", failures=2)
    outbox.put_many([window(i) for i in range(20)])
    uplink = make_uplink(outbox, broker.port, prefix)
    uplink.start()
    try:
        wait_until(lambda: outbox.stats().depth == 0, timeout=20, what="drain despite errors")
    finally:
        uplink.stop()
        outbox.close()
        collector.close()
    assert outbox.failures == 0


class BlackholeProxy:
    """A TCP proxy to the broker that can silently swallow traffic (no FIN, no RST)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.blackhole = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.blackhole.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                s.close()


@pytest.mark.slow
def test_silently_dropped_traffic_is_detected_and_nothing_is_lost(
    broker: Broker, tmp_path: Path, prefix: str
) -> None:
    proxy = BlackholeProxy(broker.port)
    collector = Collector(broker.port, prefix)  # the cloud side talks to the broker directly
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    cfg = MqttConfig(port=proxy.port, topic_prefix=prefix, keepalive_s=5, max_inflight=5)
    uplink = MqttUplink(cfg, IDENT, outbox, backoff=Backoff(0.05, 0.3))
    uplink.start()
    try:
        outbox.put_many([window(i) for i in range(10)])
        uplink.notify()
        wait_until(lambda: len(collector.first_seen_sequences()) == 10, what="first batch")
        proxy.blackhole.set()  # the network goes silent: no error, no close
        outbox.put_many([window(i) for i in range(10, 30)])
        uplink.notify()
        wait_until(lambda: not uplink.connected, timeout=20, what="keepalive to notice")
        # The 20 new ones wait (plus any of the first batch whose PUBACK the silence swallowed).
        assert outbox.stats().depth >= 20
        proxy.blackhole.clear()
        wait_until(lambda: outbox.stats().depth == 0, timeout=20, what="drain after the silence")
        wait_until(lambda: len(collector.first_seen_sequences()) == 30, what="every envelope")
    finally:
        uplink.stop()
        collector.close()
        outbox.close()
        proxy.close()
    assert collector.first_seen_sequences() == list(range(1, 31))
