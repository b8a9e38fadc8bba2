"""The wire contract end to end: the edge agent's own outbox and uplinks (MQTT and gRPC) deliver
into cloud ingest; the outbox empties only as the cloud acknowledges, and the API shows it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.grpc_server import build_server
from cloud.ingest.mqtt import MqttIngest, MqttIngestConfig
from cloud.ingest.service import IngestService
from cloud.ingest.validate import Limits
from cloud.simulator.envelopes import window_envelope
from edge.config import DeviceIdentity, GrpcConfig, MqttConfig
from edge.outbox import SqliteOutbox
from edge.uplink.grpc import GrpcUplink
from edge.uplink.mqtt import MqttUplink

N = 25


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def device(pg_pool: Any, tmp_path: Path) -> dict[str, Any]:
    """A registered device, its identity and an outbox holding N windows (in 3 at a time)."""
    tag = uuid.uuid4().hex[:8]
    store, dev = f"edge-{tag}", f"edged-{tag}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=store, name="Edge", timezone="UTC")
        credential = create_device(conn, store_id=store, device_id=dev)
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    end = datetime.now(UTC) - timedelta(seconds=N)
    outbox.put_many([
        window_envelope(store_id=store, device_id=dev, sequence=0,
                        start=end + timedelta(seconds=i - 1), end=end + timedelta(seconds=i),
                        lines={"door": (3, 1)})
        for i in range(N)
    ])  # fmt: skip
    identity = DeviceIdentity(device_id=dev, store_id=store)
    return {"store": store, "dev": dev, "cred": credential, "outbox": outbox, "id": identity}


def _in_today(client: TestClient, token_for: Any, store: str) -> int:
    res = client.get(f"/v1/stores/{store}/footfall/live", headers=token_for(Role.ADMIN))
    return int(res.json()["in_today"])


@pytest.fixture
def cloud_mqtt(pg_pool: Any, mqtt_broker: tuple[str, int], mqtt_prefix: str) -> Iterator[None]:
    """Cloud MQTT ingest on the test prefix."""
    cfg = MqttIngestConfig(host=mqtt_broker[0], port=mqtt_broker[1], topic_prefix=mqtt_prefix,
                           client_id=f"edge-it-{uuid.uuid4().hex[:8]}", session_expiry_s=0,
                           share_group=f"g{uuid.uuid4().hex[:6]}")  # fmt: skip
    sub = MqttIngest(cfg, IngestService(pg_pool, Limits()))
    sub.start()
    assert sub.subscribed.wait(10)
    yield
    sub.stop()


def test_edge_mqtt_uplink_into_cloud(
    cloud_mqtt: None, device: dict[str, Any], mqtt_broker: tuple[str, int], mqtt_prefix: str,
    client: TestClient, token_for: Any, pg_pool: Any,
) -> None:  # fmt: skip
    config = MqttConfig(host=mqtt_broker[0], port=mqtt_broker[1], topic_prefix=mqtt_prefix)
    uplink = MqttUplink(config, device["id"], device["outbox"], software_version="it-1")
    uplink.start()
    uplink.notify()
    try:
        _until(lambda: device["outbox"].stats().depth == 0, "the outbox to drain")
        _until(lambda: _in_today(client, token_for, device["store"]) == 3 * N, "the API")

        def online() -> bool:
            with pg_pool.connection() as conn:
                row = conn.execute(
                    "SELECT online, software_version FROM devices WHERE id = %s", (device["dev"],)
                ).fetchone()
            return row == (True, "it-1")

        _until(online, "the retained online status")
    finally:
        uplink.stop()
    _until(lambda: not online(), "the device to go offline")  # clean stop: offline status
    device["outbox"].close()


def test_edge_grpc_uplink_into_cloud(
    device: dict[str, Any], settings: Settings, pg_pool: Any, client: TestClient, token_for: Any
) -> None:
    server, port = build_server(settings, IngestService(pg_pool, Limits()), bind="127.0.0.1:0")
    server.start()
    config = GrpcConfig(target=f"127.0.0.1:{port}", token=SecretStr(device["cred"]))
    uplink = GrpcUplink(config, device["id"], device["outbox"])
    uplink.start()
    uplink.notify()
    try:
        _until(lambda: device["outbox"].stats().depth == 0, "the outbox to drain")
        assert _in_today(client, token_for, device["store"]) == 3 * N
        assert uplink.stats.sent >= N
    finally:
        uplink.stop()
        server.stop(grace=1.0).wait()
        device["outbox"].close()
