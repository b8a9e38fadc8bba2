"""The demo's embedded services work without any local server: PostgreSQL from the pgserver
wheel (migrations apply) and an MQTT 5 broker with shared subscriptions and retained messages."""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from cloud.db.migrate import migrate
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
