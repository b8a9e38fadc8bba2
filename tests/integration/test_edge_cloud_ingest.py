"""The edge uplinks against the real cloud ingest (MQTT shared subscription and gRPC server),
PostgreSQL underneath: the wire contract holds end to end and nothing is counted twice."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.grpc_server import build_server
from cloud.ingest.mqtt import MqttIngest, MqttIngestConfig
from cloud.ingest.service import IngestService
from cloud.ingest.validate import Limits
from cloud.simulator.envelopes import window_envelope
from edge.config import DeviceIdentity, GrpcConfig, MqttConfig
from edge.health import HealthCollector
from edge.outbox import SqliteOutbox
from edge.uplink import Backoff
from edge.uplink.grpc import GrpcUplink
from edge.uplink.mqtt import MqttUplink
from protos.mallpulse.v1 import telemetry_pb2

pytestmark = pytest.mark.integration


def wait_until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def device(
    pg_pool: Any, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> Iterator[dict[str, str]]:
    """A store with one registered device and its credential; its retained status is removed
    from the shared broker afterwards, whatever the test did."""
    tag = uuid.uuid4().hex[:8]
    ids = {"store": f"ec-{tag}", "dev": f"ecd-{tag}"}
    with pg_pool.connection() as conn:
        create_store(conn, store_id=ids["store"], name="Edge-cloud", timezone="UTC")
        ids["cred"] = create_device(conn, store_id=ids["store"], device_id=ids["dev"])
    yield ids
    clear_status(mqtt_broker, f"{mqtt_prefix}/{ids['store']}/{ids['dev']}")


def windows(ids: dict[str, str], n: int) -> list[telemetry_pb2.Envelope]:
    """n consecutive one-minute windows, 3 people in each, sequence left to the outbox."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=n + 1)
    return [
        window_envelope(
            store_id=ids["store"],
            device_id=ids["dev"],
            sequence=0,
            start=start + timedelta(minutes=i),
            end=start + timedelta(minutes=i + 1),
            lines={"door": (3, 1)},
        )
        for i in range(n)
    ]


def total_in(pg_pool: Any, store: str) -> int:
    with pg_pool.connection() as conn:
        row = conn.execute(
            "SELECT coalesce(sum(in_count), 0) FROM line_counts WHERE store_id = %s", (store,)
        ).fetchone()
    return int(row[0]) if row else 0


def kinds(pg_pool: Any, device_id: str) -> dict[str, int]:
    with pg_pool.connection() as conn:
        rows = conn.execute(
            "SELECT kind, count(*) FROM envelopes WHERE device_id = %s GROUP BY kind",
            (device_id,),
        ).fetchall()
    return {str(k): int(n) for k, n in rows}


def online(pg_pool: Any, device_id: str) -> Any:
    with pg_pool.connection() as conn:
        row = conn.execute("SELECT online FROM devices WHERE id = %s", (device_id,)).fetchone()
    return row[0] if row else None


@pytest.fixture
def mqtt_ingest(
    pg_pool: Any, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> Iterator[MqttIngest]:
    cfg = MqttIngestConfig(
        host=mqtt_broker[0],
        port=mqtt_broker[1],
        client_id=f"edge-it-{uuid.uuid4().hex[:8]}",
        topic_prefix=mqtt_prefix,
        share_group=f"g{uuid.uuid4().hex[:8]}",
        session_expiry_s=0,
    )
    sub = MqttIngest(cfg, IngestService(pg_pool, Limits()))
    sub.start()
    assert sub.subscribed.wait(10), "the cloud ingest did not subscribe"
    yield sub
    sub.stop()


def test_mqtt_uplink_into_the_cloud_ingest(
    mqtt_ingest: MqttIngest,
    mqtt_broker: tuple[str, int],
    mqtt_prefix: str,
    device: dict[str, str],
    pg_pool: Any,
    tmp_path: Path,
) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    outbox.put_many(windows(device, 10))
    ident = DeviceIdentity(device_id=device["dev"], store_id=device["store"])
    health = HealthCollector(
        ident,
        outbox_stats=outbox.stats,
        cameras=list,
        software_version="0.1.0",
        models=[],
        config_version=lambda: 1,
    )
    outbox.put(health.envelope())  # a real reading (psutil), as the agent sends it
    cfg = MqttConfig(
        host=mqtt_broker[0], port=mqtt_broker[1], topic_prefix=mqtt_prefix, session_expiry_s=0
    )
    uplink = MqttUplink(cfg, ident, outbox, backoff=Backoff(0.05, 0.3), software_version="t")
    uplink.start()
    try:
        wait_until(lambda: outbox.stats().depth == 0, what="outbox drained")
        wait_until(lambda: total_in(pg_pool, device["store"]) == 30, what="rows in the cloud")
        wait_until(lambda: kinds(pg_pool, device["dev"]) == {"window": 10, "health": 1})
        with pg_pool.connection() as conn:
            dead = conn.execute(
                "SELECT reason_code, reason FROM dead_letters WHERE device_id = %s",
                (device["dev"],),
            ).fetchall()
        assert dead == []
        wait_until(lambda: online(pg_pool, device["dev"]) is True, what="device online")
        # The same envelopes again (as after a crash before the deletes): counted once.
        again = SqliteOutbox(tmp_path / "again.db")
        again.put_many(windows(device, 10))
        uplink2 = MqttUplink(
            cfg,
            ident,
            again,
            backoff=Backoff(0.05, 0.3),
            client_id=f"resend-{device['dev']}",
            presence=False,
        )
        uplink2.start()
        wait_until(lambda: again.stats().depth == 0, what="resend drained")
        uplink2.stop()
        again.close()
        time.sleep(0.5)  # give a double count time to show up
        assert total_in(pg_pool, device["store"]) == 30
        assert online(pg_pool, device["dev"]) is True
    finally:
        uplink.stop()  # a clean stop publishes online=false
        outbox.close()
    wait_until(lambda: online(pg_pool, device["dev"]) is False, what="device offline")


def clear_status(broker: tuple[str, int], base: str) -> None:
    """Remove the retained status the test left on the shared broker."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(*broker)
    client.loop_start()
    client.publish(f"{base}/status", b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_grpc_uplink_into_the_cloud_ingest(
    database_url: str, device: dict[str, str], pg_pool: Any, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=database_url,
        jwt_secret="edge-test-6419141c349984bebf288ebe8004b997d45210a7f05ca398",
    )
    server, port = build_server(settings, IngestService(pg_pool, Limits()), bind="127.0.0.1:0")
    server.start()
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    outbox.put_many(windows(device, 8))
    cfg = GrpcConfig(target=f"127.0.0.1:{port}", token=device["cred"])
    ident = DeviceIdentity(device_id=device["dev"], store_id=device["store"])
    uplink = GrpcUplink(cfg, ident, outbox, backoff=Backoff(0.05, 0.3))
    uplink.start()
    try:
        wait_until(lambda: outbox.stats().depth == 0, what="outbox drained over gRPC")
    finally:
        uplink.stop()
        outbox.close()
        server.stop(grace=1.0).wait()
    assert (uplink.stats.acked, uplink.stats.rejected) == (8, 0)
    assert total_in(pg_pool, device["store"]) == 24


def test_last_will_marks_the_device_offline_in_the_cloud(
    mqtt_ingest: MqttIngest,
    mqtt_broker: tuple[str, int],
    mqtt_prefix: str,
    device: dict[str, str],
    pg_pool: Any,
    tmp_path: Path,
) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    ident = DeviceIdentity(device_id=device["dev"], store_id=device["store"])
    cfg = MqttConfig(
        host=mqtt_broker[0], port=mqtt_broker[1], topic_prefix=mqtt_prefix, session_expiry_s=0
    )
    # A slow reconnect (at least 5 s) leaves time to see the device offline.
    uplink = MqttUplink(cfg, ident, outbox, backoff=Backoff(50.0, 60.0), software_version="t")
    uplink.start()
    try:
        wait_until(lambda: online(pg_pool, device["dev"]) is True, what="device online")
        sock = uplink._client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # gone without DISCONNECT: the broker sends the will
        wait_until(lambda: online(pg_pool, device["dev"]) is False, what="will applied")
    finally:
        uplink.stop()
        outbox.close()
