"""Issue 11 item 9c: a message that makes the ingest fail in an unforeseen way is isolated,
dead-lettered with the error and acknowledged; the rest of its batch is stored. (It used to be
retried for ever, holding back every later message of its worker.)"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest import mqtt as ingest_mqtt
from cloud.ingest.mqtt import MqttIngest, MqttIngestConfig
from cloud.ingest.rows import Batch
from cloud.ingest.service import IngestService
from cloud.ingest.status import apply_statuses
from cloud.ingest.validate import Limits
from cloud.simulator.envelopes import window_envelope
from protos.mallpulse.v1 import delivery_pb2, telemetry_pb2
from tests.support.mqtt import wait_until

N = 12
POISON_SEQ = 5


@pytest.fixture
def poisoned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Envelopes of camera `poison` and the status payload b"poison" raise an error no handler
    foresees (as a bug would), every time."""
    add = Batch.add

    def add_or_fail(self: Batch, env: Any, *args: Any) -> None:
        if env.camera_id == "poison":
            raise RuntimeError("injected bug in the row mapping")
        add(self, env, *args)

    apply = apply_statuses

    def apply_or_fail(pool: Any, items: list[Any], **kw: Any) -> int:
        if any(item.payload == b"poison" for item in items):
            raise RuntimeError("injected bug in the presence handler")
        return apply(pool, items, **kw)

    monkeypatch.setattr(Batch, "add", add_or_fail)
    monkeypatch.setattr(ingest_mqtt, "apply_statuses", apply_or_fail)


@pytest.fixture
def device(pg_pool: Any) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    ids = {"store": f"poison-{tag}", "dev": f"poisond-{tag}"}
    with pg_pool.connection() as conn:
        create_store(conn, store_id=ids["store"], name="Poison", timezone="UTC")
        create_device(conn, store_id=ids["store"], device_id=ids["dev"])
    return ids


@pytest.fixture
def ingest(
    poisoned: None, pg_pool: Any, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> Iterator[MqttIngest]:
    yield from _ingest(pg_pool, mqtt_broker, mqtt_prefix)


def _ingest(pg_pool: Any, mqtt_broker: tuple[str, int], mqtt_prefix: str) -> Iterator[MqttIngest]:
    cfg = MqttIngestConfig(host=mqtt_broker[0], port=mqtt_broker[1], topic_prefix=mqtt_prefix,
                           client_id=f"poison-{uuid.uuid4().hex[:8]}", session_expiry_s=0,
                           share_group=f"g{uuid.uuid4().hex[:6]}", batch_size=100,
                           batch_wait_s=0.5, workers=1)  # fmt: skip
    sub = MqttIngest(cfg, IngestService(pg_pool, Limits()))
    sub.start()
    assert sub.subscribed.wait(10)
    yield sub
    sub.stop()


def test_poison_messages_are_dead_lettered_acknowledged_and_the_batch_stored(
    ingest: MqttIngest, device: dict[str, str], pg_pool: Any, mqtt_broker: tuple[str, int],
    mqtt_prefix: str,
) -> None:  # fmt: skip
    base = f"{mqtt_prefix}/{device['store']}/{device['dev']}"
    confirmed: set[int] = set()
    rejected: set[int] = set()
    lock = threading.Lock()

    def on_ack(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        ack = delivery_pb2.DeliveryAck.FromString(bytes(msg.payload))
        with lock:
            for r in ack.ranges:
                confirmed.update(range(r.first, r.last + 1))
            rejected.update(ack.rejected)

    gw = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    gw.on_message = on_ack
    subscribed = threading.Event()
    gw.on_subscribe = lambda *_: subscribed.set()
    gw.connect(*mqtt_broker)
    gw.subscribe(f"{base}/ack", qos=1)
    gw.loop_start()
    assert subscribed.wait(10)
    end = datetime.now(UTC)
    try:
        for seq in range(1, N + 1):  # one batch (batch_wait_s 0.5): good ones and the poison
            env = window_envelope(
                store_id=device["store"], device_id=device["dev"], sequence=seq,
                start=end - timedelta(minutes=1), end=end, lines={"door": (1, 0)},
                camera_id="poison" if seq == POISON_SEQ else "cam-1",
            )  # fmt: skip
            gw.publish(f"{base}/window", env.SerializeToString(), qos=1)
        gw.publish(f"{base}/status", b"poison", qos=1).wait_for_publish(10)
        wait_until(lambda: len(confirmed) == N, timeout=60, what="every sequence acknowledged")
        wait_until(lambda: _dead(pg_pool, device["dev"], base) >= 2, what="both dead-lettered")
        time.sleep(0.5)  # a message acknowledged too late would be stored or dead-lettered again
    finally:
        gw.loop_stop()
        gw.disconnect()
    with pg_pool.connection() as conn:
        stored = [r[0] for r in conn.execute(
            "SELECT sequence FROM envelopes WHERE device_id = %s ORDER BY sequence",
            (device["dev"],))]  # fmt: skip
        dead = conn.execute(
            "SELECT topic, sequence, reason_code, reason FROM dead_letters"
            " WHERE topic LIKE %s ORDER BY id", (base + "/%",),
        ).fetchall()  # fmt: skip
    assert stored == [s for s in range(1, N + 1) if s != POISON_SEQ]
    assert confirmed == set(range(1, N + 1)) and rejected == {POISON_SEQ}
    kinds = sorted((t.rpartition("/")[2], s or 0, c) for t, s, c, _ in dead)
    assert kinds == [("status", 0, "unprocessable"), ("window", POISON_SEQ, "unprocessable")]
    assert all("RuntimeError('injected bug" in reason for *_, reason in dead)


def _dead(pg_pool: Any, device: str, base: str) -> int:
    with pg_pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE topic LIKE %s", (base + "/%",)
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_batch_is_acknowledged_to_the_broker_in_arrival_order(
    pg_pool: Any, device: dict[str, str], mqtt_broker: tuple[str, int], mqtt_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """MQTT wants PUBACKs in the order the PUBLISHes came (rumqttd drops a client that does
    otherwise); the envelopes of a batch are committed before its presence messages, but the
    batch is still acknowledged in arrival order."""
    taken: list[int] = []
    acked: list[int] = []
    take, ack = MqttIngest._take, MqttIngest._ack

    mixed: list[bool] = []  # per batch: did presence arrive before an envelope in it?

    def record_take(self: MqttIngest, inbox: Any) -> list[mqtt.MQTTMessage]:
        batch = take(self, inbox)
        taken.extend(m.mid for m in batch)
        kinds = [m.topic.rpartition("/")[2] for m in batch]
        mixed.append("status" in kinds and "window" in kinds[kinds.index("status") :])
        return batch

    def record_ack(self: MqttIngest, messages: list[mqtt.MQTTMessage]) -> None:
        acked.extend(m.mid for m in messages)
        ack(self, messages)

    monkeypatch.setattr(MqttIngest, "_take", record_take)
    monkeypatch.setattr(MqttIngest, "_ack", record_ack)
    sub = next(_ingest(pg_pool, mqtt_broker, mqtt_prefix))
    base = f"{mqtt_prefix}/{device['store']}/{device['dev']}"
    gw = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    gw.connect(*mqtt_broker)
    gw.loop_start()
    end = datetime.now(UTC)
    try:
        status = telemetry_pb2.DeviceStatus(device_id=device["dev"], store_id=device["store"],
                                            online=True)  # fmt: skip
        status.at.GetCurrentTime()
        envs = [window_envelope(store_id=device["store"], device_id=device["dev"], sequence=seq,
                                start=end - timedelta(minutes=1), end=end).SerializeToString()
                for seq in range(1, 6)]  # fmt: skip
        gw.publish(f"{base}/status", status.SerializeToString(), qos=1)  # presence first
        for payload in envs:  # back to back: one batch (batch_wait_s 0.5)
            info = gw.publish(f"{base}/window", payload, qos=1)
        info.wait_for_publish(10)
        wait_until(lambda: len(acked) >= 6, what="six messages acknowledged")
    finally:
        gw.loop_stop()
        gw.disconnect()
        sub.stop()
    assert any(mixed), "no batch held presence before an envelope: nothing was tested"
    assert len(taken) == 6 and acked == taken
