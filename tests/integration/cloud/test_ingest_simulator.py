"""The fleet simulator end to end: MQTT and gRPC transports into real ingest, nothing lost."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cloud.core.security import Role, issue_token
from cloud.core.settings import Settings
from cloud.ingest.grpc_server import build_server
from cloud.ingest.mqtt import MqttIngest, MqttIngestConfig
from cloud.ingest.service import IngestService
from cloud.ingest.validate import Limits
from cloud.simulator.fleet import Fleet, FleetConfig, provision


def _ledger(pg_pool: Any, prefix: str) -> tuple[int, int]:
    """(envelopes stored, dead letters) of the simulated stores."""
    with pg_pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM envelopes WHERE store_id LIKE %(p)s),"
            " (SELECT count(*) FROM dead_letters WHERE store_id LIKE %(p)s)",
            {"p": prefix + "-%"},
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.fixture
def ingest(
    pg_pool: Any, settings: Settings, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> Iterator[dict[str, Any]]:
    """MQTT and gRPC ingest on the test database."""
    service = IngestService(pg_pool, Limits())
    cfg = MqttIngestConfig(
        host=mqtt_broker[0],
        port=mqtt_broker[1],
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
        topic_prefix=mqtt_prefix,
        share_group=f"g{uuid.uuid4().hex[:8]}",
        session_expiry_s=0,
    )
    sub = MqttIngest(cfg, service)
    sub.start()
    assert sub.subscribed.wait(10)
    server, port = build_server(settings, service, bind="127.0.0.1:0")
    server.start()
    yield {"port": port}
    server.stop(grace=1.0).wait()
    sub.stop()


@pytest.mark.parametrize("transport", ["mqtt", "grpc"])
def test_simulated_fleet_is_ingested_completely(
    ingest: dict[str, Any],
    pg_pool: Any,
    settings: Settings,
    mqtt_broker: tuple[str, int],
    mqtt_prefix: str,
    client: Any,
    token_for: Any,
    transport: str,
) -> None:
    prefix = f"sim{uuid.uuid4().hex[:6]}"
    cfg = FleetConfig(
        stores=2,
        devices_per_store=2,
        rate=15.0,
        transport="grpc" if transport == "grpc" else "mqtt",
        store_prefix=prefix,
        mqtt_host=mqtt_broker[0],
        mqtt_port=mqtt_broker[1],
        topic_prefix=mqtt_prefix,
        grpc_target=f"127.0.0.1:{ingest['port']}",
        grpc_token=issue_token(settings, subject="sim", role=Role.ADMIN),
        health_every=5,
    )
    fleet = Fleet(cfg)
    with pg_pool.connection() as conn:
        assert provision(conn, fleet.devices) == 4
        assert provision(conn, fleet.devices) == 0  # idempotent
    stats = fleet.run_for(1.5)
    assert stats.sent > 40 and stats.errors == 0
    deadline = time.monotonic() + 15
    while _ledger(pg_pool, prefix)[0] < stats.sent and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ledger(pg_pool, prefix) == (stats.sent, 0)
    chain = client.get("/v1/chain/live", headers=token_for(Role.HQ_MARKETER)).json()
    mine = [s for s in chain["stores"] if s["store_id"].startswith(prefix)]
    assert len(mine) == 2 and all(s["devices_total"] == 2 for s in mine)


def test_simulate_command(
    database_url: str, mqtt_broker: tuple[str, int], mqtt_prefix: str, pg_pool: Any
) -> None:
    from typer.testing import CliRunner

    from mallpulse.cli import app

    prefix = f"cli{uuid.uuid4().hex[:6]}"
    env = {
        "MALLPULSE_DATABASE_URL": database_url,
        "MALLPULSE_MQTT_HOST": mqtt_broker[0],
        "MALLPULSE_MQTT_PORT": str(mqtt_broker[1]),
        "MALLPULSE_MQTT_TOPIC_PREFIX": mqtt_prefix,
    }
    args = ["simulate", "--stores", "2", "--devices-per-store", "1", "--rate", "10",
            "--duration", "1", "--prefix", prefix]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "provisioned 2 new devices in 2 stores" in result.output
    sent = int(result.output.rsplit("sent ", 1)[1].split()[0])
    assert sent >= 10
    with pg_pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM devices WHERE store_id LIKE %s", (prefix + "-%",))
        assert row.fetchone() == (2,)
    bad = CliRunner().invoke(app, ["simulate", "--transport", "carrier-pigeon"], env=env)
    assert bad.exit_code == 2 and "transport" in bad.output
