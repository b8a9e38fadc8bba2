"""Ingest over real transports: MQTT shared subscription (Mosquitto), gRPC streams, last wills."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.security import Role, issue_token
from cloud.core.settings import Settings
from cloud.db.repositories.auth import revoke_token
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.grpc_server import build_server
from cloud.ingest.mqtt import MqttIngest, MqttIngestConfig
from cloud.ingest.service import IngestService
from cloud.ingest.status import apply_statuses
from cloud.ingest.validate import Incoming, Limits
from cloud.simulator.envelopes import status_message, window_envelope
from protos.mallpulse.v1 import ingest_pb2, ingest_pb2_grpc, telemetry_pb2


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll until `check()` is truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.05)
        value = check()
    assert value, f"condition not met within {timeout}s (last value {value!r})"
    return value


@pytest.fixture
def fleet(pg_pool: Any) -> dict[str, str]:
    """A store with two devices."""
    tag = uuid.uuid4().hex[:8]
    ids = {"store": f"tr-{tag}", "dev": f"trd-{tag}", "dev2": f"trd2-{tag}"}
    with pg_pool.connection() as conn:
        create_store(conn, store_id=ids["store"], name="T", timezone="UTC")
        ids["cred"] = create_device(conn, store_id=ids["store"], device_id=ids["dev"])
        create_device(conn, store_id=ids["store"], device_id=ids["dev2"])
    return ids


def _env(fleet: dict[str, str], seq: int, n_in: int = 1, device: str | None = None) -> bytes:
    end = datetime.now(UTC)
    return window_envelope(
        store_id=fleet["store"], device_id=device or fleet["dev"], sequence=seq,
        start=end - timedelta(minutes=1), end=end, lines={"door": (n_in, 0)}, zones={"floor": seq},
    ).SerializeToString()  # fmt: skip


@pytest.fixture
def mqtt_ingest(
    pg_pool: Any, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> Iterator[MqttIngest]:
    """A running MQTT ingest subscriber on a unique prefix and share group."""
    cfg = MqttIngestConfig(
        host=mqtt_broker[0], port=mqtt_broker[1], client_id=f"it-{uuid.uuid4().hex[:10]}",
        topic_prefix=mqtt_prefix, share_group=f"g{uuid.uuid4().hex[:8]}", session_expiry_s=0,
    )  # fmt: skip
    sub = MqttIngest(cfg, IngestService(pg_pool, Limits()))
    sub.start()
    assert sub.subscribed.wait(10), "ingest did not subscribe at the broker"
    yield sub
    sub.stop()


def _publisher(broker: tuple[str, int], **will: Any) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if will:
        client.will_set(**will)
    client.connect(*broker, keepalive=5)
    client.loop_start()
    return client


def _total_in(pg_pool: Any, store: str) -> int:
    with pg_pool.connection() as conn:
        row = conn.execute(
            "SELECT coalesce(sum(in_count), 0) FROM line_counts WHERE store_id = %s", (store,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_mqtt_envelopes_reach_the_api_once(
    mqtt_ingest: MqttIngest, mqtt_broker: tuple[str, int], mqtt_prefix: str,
    fleet: dict[str, str], client: TestClient, token_for: Any, pg_pool: Any,
) -> None:  # fmt: skip
    pub = _publisher(mqtt_broker)
    topic = f"{mqtt_prefix}/{fleet['store']}/{fleet['dev']}/window"
    for seq in (1, 2, 2, 3, 1):  # two re-sends
        pub.publish(topic, _env(fleet, seq, n_in=10), qos=1).wait_for_publish(5)
    pub.publish(topic, b"garbage", qos=1).wait_for_publish(5)
    url = f"/v1/stores/{fleet['store']}/footfall/live"
    headers = token_for(Role.STORE_MANAGER, {fleet["store"]})
    live = wait_for(lambda: (b := client.get(url, headers=headers).json())["in_today"] >= 30 and b)
    time.sleep(0.5)  # give a wrongly double-counted copy time to show up
    assert client.get(url, headers=headers).json()["in_today"] == 30
    assert live["zones"] == [
        {"zone_id": "floor", "occupancy": 3, "as_of": live["zones"][0]["as_of"]}
    ]
    with pg_pool.connection() as conn:
        dead = conn.execute(
            "SELECT reason_code FROM dead_letters WHERE topic = %s", (topic,)
        ).fetchall()
    assert dead == [("bad_protobuf",)]
    pub.loop_stop()
    pub.disconnect()


def test_last_will_marks_the_device_offline(
    mqtt_ingest: MqttIngest, mqtt_broker: tuple[str, int], mqtt_prefix: str,
    fleet: dict[str, str], pg_pool: Any,
) -> None:  # fmt: skip
    store, dev = fleet["store"], fleet["dev"]
    topic = f"{mqtt_prefix}/{store}/{dev}/status"
    later = datetime.now(UTC) + timedelta(seconds=1)
    will = status_message(store_id=store, device_id=dev, online=False, at=later)
    device = _publisher(mqtt_broker, topic=topic, payload=will, qos=1, retain=True)
    online = status_message(store_id=store, device_id=dev, online=True, at=datetime.now(UTC))
    device.publish(topic, online, qos=1, retain=True).wait_for_publish(5)

    def state() -> Any:
        with pg_pool.connection() as conn:
            row = conn.execute("SELECT online FROM devices WHERE id = %s", (dev,)).fetchone()
        return row[0] if row else None

    wait_for(lambda: state() is True)
    device.loop_stop()
    sock = device.socket()
    assert sock is not None
    sock.close()  # vanish without DISCONNECT: the broker publishes the last will
    wait_for(lambda: state() is False)
    cleaner = _publisher(mqtt_broker)
    cleaner.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    cleaner.disconnect()


@pytest.fixture
def grpc_stub(settings: Settings, pg_pool: Any) -> Iterator[ingest_pb2_grpc.TelemetryIngestStub]:
    """A stub of a real gRPC ingest server on a loopback port."""
    server, port = build_server(settings, IngestService(pg_pool, Limits()), bind="127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield ingest_pb2_grpc.TelemetryIngestStub(channel)
    channel.close()
    server.stop(grace=1.0).wait()


def _stream(stub: Any, payloads: list[bytes], token: str) -> list[ingest_pb2.Ack]:
    envs = [telemetry_pb2.Envelope.FromString(p) for p in payloads]
    acks = stub.StreamEnvelopes(iter(envs), metadata=[("authorization", f"Bearer {token}")])
    return list(acks)


def test_grpc_acks_accepted_duplicate_rejected(
    grpc_stub: Any, fleet: dict[str, str], pg_pool: Any, client: TestClient, token_for: Any
) -> None:
    payloads = [_env(fleet, 1, 5), _env(fleet, 2, 5), _env(fleet, 1, 5),
                _env(fleet, 3, 5, device=fleet["dev2"])]  # fmt: skip
    acks = _stream(grpc_stub, payloads, fleet["cred"])
    assert [(a.sequence, a.status) for a in acks] == [
        (1, ingest_pb2.ACK_STATUS_ACCEPTED), (2, ingest_pb2.ACK_STATUS_ACCEPTED),
        (1, ingest_pb2.ACK_STATUS_DUPLICATE), (3, ingest_pb2.ACK_STATUS_REJECTED),
    ]  # fmt: skip
    assert acks[3].reason.startswith("device_mismatch")
    again = _stream(grpc_stub, payloads[:2], fleet["cred"])
    assert {a.status for a in again} == {ingest_pb2.ACK_STATUS_DUPLICATE}
    live = client.get(f"/v1/stores/{fleet['store']}/footfall/live", headers=token_for(Role.ADMIN))
    assert live.json()["in_today"] == 10


def test_grpc_device_jwt_and_admin_relay(
    grpc_stub: Any, fleet: dict[str, str], settings: Settings
) -> None:
    device_jwt = issue_token(settings, subject=fleet["dev2"], role=Role.DEVICE)
    acks = _stream(grpc_stub, [_env(fleet, 7, device=fleet["dev2"])], device_jwt)
    assert acks[0].status == ingest_pb2.ACK_STATUS_ACCEPTED
    relay = issue_token(settings, subject="simulator", role=Role.ADMIN)
    acks = _stream(grpc_stub, [_env(fleet, 8), _env(fleet, 8, device=fleet["dev2"])], relay)
    assert [a.status for a in acks] == [ingest_pb2.ACK_STATUS_ACCEPTED] * 2


@pytest.mark.parametrize(
    "token",
    ["", "mpd_nobody.secret", "not-a-jwt", "manager"],
)
def test_grpc_refuses_unauthenticated_callers(
    grpc_stub: Any, fleet: dict[str, str], settings: Settings, token: str
) -> None:
    if token == "manager":
        token = issue_token(settings, subject="m", role=Role.STORE_MANAGER, store_ids={"x"})
    elif token == "mpd_nobody.secret":
        token = fleet["cred"].rpartition(".")[0] + ".wrong-secret"
    with pytest.raises(grpc.RpcError) as err:
        _stream(grpc_stub, [_env(fleet, 1)], token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_grpc_refuses_a_revoked_token(
    grpc_stub: Any, fleet: dict[str, str], settings: Settings, pg_pool: Any
) -> None:
    relay = issue_token(settings, subject="simulator", role=Role.ADMIN)
    jti = jwt.decode(relay, options={"verify_signature": False})["jti"]
    with pg_pool.connection() as conn:
        assert revoke_token(conn, jti=jti, keep_for=timedelta(hours=1), reason="test")
    with pytest.raises(grpc.RpcError) as err:
        _stream(grpc_stub, [_env(fleet, 11)], relay)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (err.value.details() or "")
    other = issue_token(settings, subject="simulator", role=Role.ADMIN)  # not revoked: accepted
    assert _stream(grpc_stub, [_env(fleet, 12)], other)[0].status == ingest_pb2.ACK_STATUS_ACCEPTED


def test_a_status_with_an_impossible_time_is_dead_lettered_not_raised(
    pg_pool: Any, fleet: dict[str, str]
) -> None:
    # binary protobuf takes any int64 seconds; converting them raised, and the MQTT worker
    # retried that (retained) batch for ever
    store, dev = fleet["store"], fleet["dev"]
    msg = telemetry_pb2.DeviceStatus(device_id=dev, store_id=store, online=True)
    msg.at.seconds = 2**62
    topic = f"p/{store}/{dev}/status"
    item = Incoming(msg.SerializeToString(), "mqtt", 1, topic, store, dev, "status")
    assert apply_statuses(pg_pool, [item]) == 0
    with pg_pool.connection() as conn:
        row = conn.execute(
            "SELECT reason_code, reason FROM dead_letters WHERE topic = %s", (topic,)
        ).fetchone()
    assert row is not None and row[0] == "out_of_range" and "`at`" in row[1]
