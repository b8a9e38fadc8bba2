"""Messages are spread over the worker queues by device, so a device's order is kept."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

from cloud.ingest.mqtt import MqttIngest, MqttIngestConfig


def _message(topic: str, mid: int) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    msg.payload = b"x"
    return msg


def _drain(sub: MqttIngest) -> list[list[tuple[str, int]]]:
    out = []
    for inbox in sub._queues:
        items = []
        while not inbox.empty():
            m = inbox.get_nowait()
            items.append((m.topic, m.mid))
        out.append(items)
    return out


def test_each_device_keeps_one_queue_and_its_order() -> None:
    service: Any = object()  # never called: only the routing is exercised
    sub = MqttIngest(MqttIngestConfig(topic_prefix="mp/v1", workers=3), service)
    kinds = ("window", "health", "status", "config/status")
    sent = [(f"mp/v1/s{d % 4}/dev-{d}/{kinds[i % 4]}", i) for i in range(200) for d in range(12)]
    for mid, (topic, _) in enumerate(sent):
        sub._on_message(sub._client, None, _message(topic, mid))
    queues = _drain(sub)
    assert sum(len(q) for q in queues) == len(sent)
    assert sum(1 for q in queues if q) >= 2, "12 devices should use more than one worker"
    for q in queues:
        assert [mid for _, mid in q] == sorted(mid for _, mid in q)
    homes = {t.split("/")[3]: i for i, q in enumerate(queues) for t, _ in q}
    for i, q in enumerate(queues):
        assert all(homes[t.split("/")[3]] == i for t, _ in q)


def test_one_worker_takes_everything() -> None:
    service: Any = object()
    sub = MqttIngest(MqttIngestConfig(workers=1), service)
    sub._on_message(sub._client, None, _message("odd-topic", 1))
    assert _drain(sub) == [[("odd-topic", 1)]]
