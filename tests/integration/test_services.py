"""The fixtures reach the real services: a round trip through PostgreSQL, Mosquitto and Redis."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion


def test_postgres_round_trip(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TEMP TABLE t (k text, v integer)")
        conn.execute("INSERT INTO t VALUES (%s, %s)", ("answer", 42))
        row = conn.execute("SELECT v FROM t WHERE k = %s", ("answer",)).fetchone()
    assert row == (42,)
    assert database_url.rpartition("/")[2].startswith("mp_test_")


def test_migrations_are_recorded_and_idempotent(database_url: str) -> None:
    from cloud.db.migrate import migrate

    assert migrate(database_url) == []  # already applied by the fixture
    with psycopg.connect(database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert 1 in versions


def test_mqtt_round_trip(mqtt_broker: tuple[str, int], mqtt_prefix: str) -> None:
    host, port = mqtt_broker
    topic = f"{mqtt_prefix}/roundtrip"
    payload = uuid.uuid4().bytes
    got: list[bytes] = []
    subscribed, received = threading.Event(), threading.Event()

    def on_subscribe(client: mqtt.Client, *_: Any) -> None:
        subscribed.set()

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        got.append(msg.payload)
        received.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-sub-{uuid.uuid4().hex[:8]}")
    sub.on_subscribe = on_subscribe
    sub.on_message = on_message
    sub.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    sub.connect(host, port)
    sub.loop_start()
    try:
        assert subscribed.wait(5), "subscription not acknowledged"
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-pub-{uuid.uuid4().hex[:8]}")
        pub.connect(host, port)
        pub.loop_start()
        pub.publish(topic, payload, qos=1).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        assert received.wait(5), "message not delivered"
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert got == [payload]


def test_redis_round_trip(redis_client: Any) -> None:
    key = redis_client.test_prefix + "k"
    redis_client.set(key, b"v", ex=60)
    assert redis_client.get(key) == b"v"
