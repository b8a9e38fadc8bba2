"""The demo's embedded services work without any local server: PostgreSQL from the pgserver
wheel (migrations apply) and an MQTT 5 broker with shared subscriptions and retained messages."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import cast

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.core.settings import Settings
from cloud.db.migrate import migrate
from cloud.ingest.mqtt import MqttIngest
from cloud.ingest.runner import mqtt_config
from cloud.ingest.service import IngestService
from mallpulse.demo.services import resolve_services


def test_embedded_postgres_and_mqtt5_broker() -> None:
    # Not pytest's tmp_path: as root, pgserver runs postgres as a system user that must traverse
    # every parent folder, and pytest keeps its temp root private (0700).
    data_dir = Path(tempfile.mkdtemp(prefix="mallpulse-embedded-"))
    services = resolve_services(data_dir=data_dir, embedded=True)
    try:
        assert "embedded (pgserver)" in services.descriptions[0]
        assert "embedded MQTT 5 broker" in services.descriptions[1]
        assert services.mqtt_port != 1883
        assert migrate(services.database_url)  # a new database: migrations apply
        with psycopg.connect(services.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert row is not None and row[0] > 0

        got: list[tuple[str, bool]] = []
        two = threading.Event()

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            got.append((msg.topic, bool(msg.retain)))
            if len(got) == 2:
                two.set()

        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"p{uuid.uuid4().hex[:8]}",
                          protocol=mqtt.MQTTv5)  # fmt: skip
        pub.connect(services.mqtt_host, services.mqtt_port)
        pub.loop_start()
        pub.publish("mallpulse/v1/s/d/status", b"on", qos=1, retain=True).wait_for_publish(5)
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"s{uuid.uuid4().hex[:8]}",
                          protocol=mqtt.MQTTv5)  # fmt: skip
        sub.on_message = on_message
        subscribed = threading.Event()
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.connect(services.mqtt_host, services.mqtt_port)
        sub.loop_start()
        sub.subscribe([("$share/ingest/mallpulse/v1/+/+/window", 1),
                       ("mallpulse/v1/+/+/status", 1)])  # fmt: skip
        assert subscribed.wait(5)
        pub.publish("mallpulse/v1/s/d/window", b"w", qos=1).wait_for_publish(5)
        assert two.wait(5), got
        assert ("mallpulse/v1/s/d/status", True) in got  # retained presence delivered on subscribe
        assert ("mallpulse/v1/s/d/window", False) in got  # shared subscription delivers
        for client in (pub, sub):
            client.loop_stop()
            client.disconnect()
    finally:
        services.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _client(client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                       manual_ack=manual_ack)  # fmt: skip


def _connect_persistent(client: mqtt.Client, host: str, port: int) -> bool:
    """Connect with clean_start=False and a session that outlives the connection; True once the
    CONNACK arrived."""
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client.connect(host, port, clean_start=False, properties=props)
    client.loop_start()
    return connected.wait(5)


def test_ingest_session_with_messages_in_flight_survives_a_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ingest subscription the demo configures on the embedded broker: a persistent session
    that goes away with unacknowledged messages gets them again on reconnect (rumqttd's router
    used to panic here on shared subscriptions, and every later connection then failed)."""
    data_dir = Path(tempfile.mkdtemp(prefix="mallpulse-embedded-"))
    services = resolve_services(data_dir=data_dir, database_url="postgresql://unused/x",
                                embedded=True)  # fmt: skip
    try:
        for key, value in services.ingest_env().items():
            monkeypatch.setenv(key, value)
        cfg = mqtt_config(Settings(database_url="postgresql://unused/x"), "t")
        # rumqttd disconnects a client whose PUBACKs are out of order: one worker, one message
        # a batch keeps them in arrival order
        assert (cfg.workers, cfg.batch_size) == (1, 1)
        topics = MqttIngest(cfg, cast(IngestService, None))._topics()
        host, port = services.mqtt_host, services.mqtt_port
        got: list[bytes] = []
        sub = _client(cfg.client_id, manual_ack=True)
        sub.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload))
        subscribed = threading.Event()
        sub.on_subscribe = lambda *_: subscribed.set()
        assert _connect_persistent(sub, host, port)
        sub.subscribe(topics)
        assert subscribed.wait(5)
        pub = _client(f"p{uuid.uuid4().hex[:8]}")
        pub.connect(host, port)
        pub.loop_start()
        for i in range(3):
            pub.publish(f"{cfg.topic_prefix}/s/d/window", b"w%d" % i, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(got) == [b"w0", b"w1", b"w2"]  # received, never acknowledged
        sub.disconnect()
        sub.loop_stop()
        pub.loop_stop()
        pub.disconnect()

        got.clear()
        again = _client(cfg.client_id, manual_ack=True)

        def ack(client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            got.append(bytes(msg.payload))
            client.ack(msg.mid, 1)

        again.on_message = ack
        assert _connect_persistent(again, host, port), "the broker no longer accepts connections"
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        again.loop_stop()
        again.disconnect()
        assert sorted(got) == [b"w0", b"w1", b"w2"]  # redelivered to the same session
    finally:
        services.close()
        shutil.rmtree(data_dir, ignore_errors=True)
