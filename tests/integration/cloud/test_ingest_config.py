"""Remote configuration: admin publishes over the API, the device gets, watches and reports
over gRPC DeviceConfigService."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.grpc_server import build_server
from cloud.ingest.service import IngestService
from cloud.ingest.validate import Limits
from protos.mallpulse.v1 import config_pb2, config_pb2_grpc


@pytest.fixture
def setup(settings: Settings, pg_pool: Any) -> Iterator[dict[str, Any]]:
    """A store with two devices and a running gRPC server."""
    tag = uuid.uuid4().hex[:8]
    ids: dict[str, Any] = {"store": f"cfg-{tag}", "dev": f"cfgd-{tag}", "other": f"cfgo-{tag}"}
    with pg_pool.connection() as conn:
        create_store(conn, store_id=ids["store"], name="C", timezone="UTC")
        ids["cred"] = create_device(conn, store_id=ids["store"], device_id=ids["dev"])
        create_device(conn, store_id=ids["store"], device_id=ids["other"])
    server, port = build_server(settings, IngestService(pg_pool, Limits()), bind="127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    ids["stub"] = config_pb2_grpc.DeviceConfigServiceStub(channel)
    ids["meta"] = [("authorization", f"Bearer {ids['cred']}")]
    yield ids
    channel.close()
    server.stop(grace=1.0).wait()


def _publish(client: TestClient, token_for: Any, device: str, doc: dict[str, Any]) -> Any:
    res = client.post(f"/v1/devices/{device}/config", json={"config": doc},
                      headers=token_for(Role.ADMIN))  # fmt: skip
    assert res.status_code == 201, res.text
    return res.json()


def test_get_watch_and_report(setup: dict[str, Any], client: TestClient, token_for: Any) -> None:
    stub, meta, dev = setup["stub"], setup["meta"], setup["dev"]
    empty = stub.GetConfig(config_pb2.ConfigRequest(device_id=dev), metadata=meta)
    assert (empty.version, empty.config_json) == (0, "")
    first = _publish(client, token_for, dev, {"device": {"device_id": dev}, "version": 0})
    assert first["version"] == 1 and first["config"]["version"] == 1
    got = stub.GetConfig(config_pb2.ConfigRequest(device_id=dev), metadata=meta)
    assert got.version == 1 and '"version":1' in got.config_json and got.sha256 == first["sha256"]

    seen: queue.Queue[Any] = queue.Queue()
    call = stub.WatchConfig(config_pb2.ConfigRequest(device_id=dev, known_version=1), metadata=meta)

    def watch() -> None:
        try:
            for doc in call:
                seen.put(doc.version)
        except grpc.RpcError as exc:
            seen.put(exc.code())

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    second = _publish(client, token_for, dev, {"device": {"device_id": dev}, "version": 7})
    assert second["version"] == 7  # a higher version in the document is kept
    assert seen.get(timeout=10) == 7
    call.cancel()
    reader.join(10)

    stub.ReportStatus(
        config_pb2.ConfigStatus(device_id=dev, version=7, accepted=False, field="cameras",
                                reason="unknown camera"),
        metadata=meta,
    )  # fmt: skip
    latest = client.get(f"/v1/devices/{dev}/config",
                        headers=token_for(Role.STORE_MANAGER, {setup["store"]})).json()  # fmt: skip
    assert latest["version"] == 7 and latest["status"] == "rejected: cameras: unknown camera"


def test_devices_see_only_their_config(
    setup: dict[str, Any], client: TestClient, token_for: Any
) -> None:
    stub, meta = setup["stub"], setup["meta"]
    with pytest.raises(grpc.RpcError) as err:
        stub.GetConfig(config_pb2.ConfigRequest(device_id=setup["other"]), metadata=meta)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        stub.GetConfig(config_pb2.ConfigRequest(device_id=setup["dev"]))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stub.ReportStatus(config_pb2.ConfigStatus(device_id=setup["dev"], version=99),
                          metadata=meta)  # fmt: skip
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    url = f"/v1/devices/{setup['dev']}/config"
    assert client.get(url, headers=token_for(Role.STORE_MANAGER, {"elsewhere"})).status_code == 403
    assert client.get(url, headers=token_for(Role.ADMIN)).status_code == 404  # none published
    denied = client.post(url, json={"config": {}}, headers=token_for(Role.HQ_MARKETER))
    assert denied.status_code == 403
    ghost = client.post("/v1/devices/nobody-here/config", json={"config": {}},
                        headers=token_for(Role.ADMIN))  # fmt: skip
    assert ghost.status_code == 404


def test_mqtt_devices_get_configs_retained_and_report(
    setup: dict[str, Any], client: TestClient, token_for: Any, pg_pool: Any,
    settings: Settings, mqtt_broker: tuple[str, int], mqtt_prefix: str,
) -> None:  # fmt: skip
    import json
    import time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from cloud.ingest.config_relay import ConfigRelay
    from cloud.ingest.mqtt import MqttIngest, MqttIngestConfig

    cfg = MqttIngestConfig(host=mqtt_broker[0], port=mqtt_broker[1], topic_prefix=mqtt_prefix,
                           client_id=f"cfg-{uuid.uuid4().hex[:8]}", session_expiry_s=0,
                           share_group=f"g{uuid.uuid4().hex[:6]}")  # fmt: skip
    sub = MqttIngest(cfg, IngestService(pg_pool, Limits()))
    relay = ConfigRelay(settings.database_url, pg_pool, mqtt_prefix, sub.publish)
    sub.relay = relay
    sub.start()
    relay.start()
    assert sub.subscribed.wait(10) and relay.listening.wait(10)
    store, dev = setup["store"], setup["dev"]
    got: queue.Queue[bytes] = queue.Queue()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    device.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
    device.connect(*mqtt_broker)
    device.loop_start()
    topic = f"{mqtt_prefix}/{store}/{dev}/config"
    device.subscribe(topic, qos=1)
    try:
        time.sleep(0.3)
        _publish(client, token_for, dev, {"device": {"device_id": dev}, "version": 0})
        doc = json.loads(got.get(timeout=10))
        assert doc["version"] == 1 and doc["device"]["device_id"] == dev
        device.publish(f"{topic}/status", b"not json", qos=1).wait_for_publish(5)
        verdict = {"version": 1, "accepted": True, "field": "", "reason": ""}
        device.publish(f"{topic}/status", json.dumps(verdict), qos=1).wait_for_publish(5)
        url = f"/v1/devices/{dev}/config"
        deadline = time.monotonic() + 10
        while client.get(url, headers=token_for(Role.ADMIN)).json()["status"] != "accepted":
            assert time.monotonic() < deadline, "verdict not recorded"
            time.sleep(0.05)
    finally:
        device.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # clear retained
        device.loop_stop()
        device.disconnect()
        relay.stop()
        sub.stop()


def test_publishing_with_an_idempotency_key_runs_once(
    setup: dict[str, Any], client: TestClient, token_for: Any
) -> None:
    url = f"/v1/devices/{setup['dev']}/config"
    headers = {**token_for(Role.ADMIN), "Idempotency-Key": "rollout-42"}
    body = {"config": {"device": {"device_id": setup["dev"]}}}
    first = client.post(url, json=body, headers=headers)
    again = client.post(url, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["version"] == again.json()["version"] == 1
    other = client.post(url, json={"config": {"x": 1}}, headers=headers)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
    fresh = client.post(url, json=body, headers=token_for(Role.ADMIN))
    assert fresh.status_code == 201 and fresh.json()["version"] == 2


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b'{"version": 1e999, "accepted": true}', "not a config verdict"),
        (b'{"version": 100000000000000000000, "accepted": true}', "no config version"),
        (b'{"version": 7, "accepted": false}', "no config version 7"),
    ],
)
def test_bad_verdicts_are_ignored_with_a_reason_not_raised(
    settings: Settings, pg_pool: Any, setup: dict[str, Any], payload: bytes, why: str
) -> None:
    # an exception here would fail the whole MQTT batch, retried for ever
    from cloud.ingest.config_relay import ConfigRelay

    relay = ConfigRelay(settings.database_url, pg_pool, "p", lambda *a, **k: None)
    assert why in (relay.record(setup["dev"], payload) or "")


def test_a_verdict_with_a_nul_character_is_recorded(
    settings: Settings, pg_pool: Any, setup: dict[str, Any], client: TestClient, token_for: Any
) -> None:
    from cloud.ingest.config_relay import ConfigRelay

    dev = setup["dev"]
    _publish(client, token_for, dev, {"device": {"device_id": dev}})
    relay = ConfigRelay(settings.database_url, pg_pool, "p", lambda *a, **k: None)
    verdict = b'{"version": 1, "accepted": false, "field": "a\\u0000b", "reason": "bad"}'
    assert relay.record(dev, verdict) is None
    status = client.get(f"/v1/devices/{dev}/config", headers=token_for(Role.ADMIN)).json()
    assert status["status"] == "rejected: ab: bad"
