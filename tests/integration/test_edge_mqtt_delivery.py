"""End-to-end delivery over MQTT: a broker's PUBACK is not a delivery.

Minimal reproduction of issue 11: Mosquitto 2.0 does not restore the *shared* subscriptions of
offline persistent sessions after a restart, so what a gateway publishes between the broker's
restart and the ingest's re-subscription is PUBACKed and then dropped. With `delivery: cloud_ack`
the gateway keeps those envelopes until the cloud confirms them and sends them again.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import DeviceIdentity, MqttConfig
from edge.outbox import SqliteOutbox
from edge.uplink import Backoff
from edge.uplink.mqtt import MqttUplink
from protos.mallpulse.v1 import telemetry_pb2
from tests.support.mqtt import AckResponder, Broker, wait_until

pytestmark = pytest.mark.integration

IDENT = DeviceIdentity(device_id="gw-del-1", store_id="store-del")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


def window(i: int) -> telemetry_pb2.Envelope:
    env = telemetry_pb2.Envelope(device_id=IDENT.device_id, store_id=IDENT.store_id, camera_id="c1")
    env.window.frames_processed = i
    return env


def uplink_for(outbox: SqliteOutbox, port: int, prefix: str, **kw: object) -> MqttUplink:
    cfg = MqttConfig.model_validate(
        {"port": port, "topic_prefix": prefix, "max_inflight": 5, "ack_timeout_s": 1.0,
         "ack_timeout_max_s": 2.0, **kw}
    )  # fmt: skip
    return MqttUplink(cfg, IDENT, outbox, backoff=Backoff(0.05, 0.3))


def test_broker_restart_with_the_ingest_reconnecting_last_loses_nothing(
    broker: Broker, tmp_path: Path
) -> None:
    prefix = f"mptest/{uuid.uuid4().hex[:10]}/mallpulse/v1"
    n = 300
    # The cloud side subscribes as the ingest does (shared group, persistent session) and
    # reconnects 3 s after a broker restart, well after the gateway (0.05-0.3 s).
    cloud = AckResponder(broker.port, prefix, share="ingest", reconnect_s=3)
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    uplink = uplink_for(outbox, broker.port, prefix)
    uplink.start()

    def produce() -> None:
        for i in range(n):
            outbox.put(window(i))
            uplink.notify()
            time.sleep(0.02)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: len(cloud.sequences()) >= 40, what="the stream to start")
        broker.stop()
        broker.start()
        wait_until(lambda: uplink.stats.connects >= 2, what="the gateway to reconnect")
        sent_before = uplink.stats.sent
        wait_until(lambda: cloud.connects >= 2, what="the cloud to reconnect")
        in_gap = uplink.stats.sent - sent_before  # published while no ingest subscribed
        producer.join(30)
        wait_until(lambda: outbox.stats().depth == 0, timeout=30, what="every envelope confirmed")
    finally:
        uplink.stop()
        cloud.close()
        outbox.close()
    landed = set(cloud.sequences())
    print(f"\nbroker restart: sent={uplink.stats.sent} in_gap={in_gap} "
          f"resent={uplink.stats.resent} landed={len(landed)} of {n}")  # fmt: skip
    assert in_gap > 0, "nothing was published while the ingest was away: nothing was tested"
    assert landed == set(range(1, n + 1))
    assert uplink.stats.resent > 0  # the broker dropped what it had PUBACKed; it was resent


class Silent:
    """A cloud that subscribes but never acknowledges (an ingest older than issue 11)."""

    def __init__(self, port: int, prefix: str) -> None:
        self.seen: list[int] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.seen.append(
            telemetry_pb2.Envelope.FromString(bytes(m.payload)).sequence
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{prefix}/+/+/window", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_cloud_that_never_acknowledges_keeps_everything_and_is_named_in_a_warning(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"mptest/{uuid.uuid4().hex[:10]}/mallpulse/v1"
    old = Silent(broker.port, prefix)
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    outbox.put_many([window(i) for i in range(30)])
    uplink = uplink_for(outbox, broker.port, prefix, max_unconfirmed=10, ack_timeout_s=0.2,
                        ack_timeout_max_s=0.4)  # fmt: skip
    caplog.set_level("WARNING", logger="edge.uplink.mqtt")
    uplink.start()
    try:
        # Ten are sent, then sending pauses; they are sent again, nothing is deleted.
        wait_until(lambda: uplink.stats.resent >= 20, what="resends with no acknowledgement")
        wait_until(lambda: "uplink.mqtt.delivery: broker_ack" in caplog.text, what="the warning")
        assert sorted(set(old.seen)) == list(range(1, 11))
        assert outbox.stats().depth == 30
        assert uplink.unconfirmed == 10
        # An ingest that acknowledges takes over: everything drains.
        cloud = AckResponder(broker.port, prefix)
        try:
            wait_until(lambda: outbox.stats().depth == 0, timeout=20, what="drain once acked")
        finally:
            cloud.close()
    finally:
        uplink.stop()
        old.close()
        outbox.close()
    assert set(cloud.sequences()) >= set(range(1, 31))
