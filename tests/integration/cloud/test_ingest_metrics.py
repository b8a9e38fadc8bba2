"""Ingest metrics (accepted, duplicate, rejected by reason, batch size, commit lag) and the
ingest's /metrics, /healthz and /readyz server (PostgreSQL and the MQTT connection)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
from prometheus_client import REGISTRY

from cloud.core import readiness
from cloud.core.metrics_http import MetricsServer
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.mqtt import MqttIngest, MqttIngestConfig
from cloud.ingest.service import IngestService
from cloud.ingest.validate import Incoming, Limits
from cloud.simulator.envelopes import window_envelope


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_outcomes_batch_size_and_commit_lag_are_counted(pg_pool: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    sid, dev = f"im-{tag}", f"imd-{tag}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="IM", timezone="UTC")
        create_device(conn, store_id=sid, device_id=dev)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    svc = IngestService(pg_pool, Limits(), clock=lambda: end + timedelta(seconds=42))
    start = end - timedelta(minutes=1)
    env = window_envelope(store_id=sid, device_id=dev, sequence=1, start=start, end=end,
                          lines={"door": (3, 1)})  # fmt: skip
    item = Incoming(env.SerializeToString(), "grpc", device_id=dev)
    names = ["mallpulse_ingest_accepted_total", "mallpulse_ingest_duplicate_total",
             "mallpulse_ingest_batch_size_count", "mallpulse_ingest_commit_lag_seconds_count",
             "mallpulse_ingest_commit_lag_seconds_sum"]  # fmt: skip
    before = {n: _value(n) for n in names}
    bad = {"reason": "bad_protobuf"}
    bad_before = _value("mallpulse_ingest_rejected_total", bad)
    outcomes = svc.ingest([item, Incoming(b"\xff garbage", "grpc", device_id=dev)])
    assert [o.status for o in outcomes] == ["accepted", "rejected"]
    assert outcomes[1].reason.startswith("bad_protobuf:"), outcomes[1].reason
    svc.ingest([item])  # the same envelope again
    delta = {n: _value(n) - before[n] for n in names}
    assert delta == {
        "mallpulse_ingest_accepted_total": 1,
        "mallpulse_ingest_duplicate_total": 1,
        "mallpulse_ingest_batch_size_count": 2,
        "mallpulse_ingest_commit_lag_seconds_count": 1,
        "mallpulse_ingest_commit_lag_seconds_sum": pytest.approx(42.0),
    }
    assert _value("mallpulse_ingest_rejected_total", bad) == bad_before + 1


@pytest.fixture
def mqtt_ingest(pg_pool: Any, mqtt_broker: tuple[str, int], mqtt_prefix: str) -> Iterator[Any]:
    """An MQTT ingest subscriber, not started."""
    cfg = MqttIngestConfig(
        host=mqtt_broker[0], port=mqtt_broker[1], client_id=f"im-{uuid.uuid4().hex[:10]}",
        topic_prefix=mqtt_prefix, share_group=f"g{uuid.uuid4().hex[:8]}", session_expiry_s=0,
    )  # fmt: skip
    sub = MqttIngest(cfg, IngestService(pg_pool, Limits()))
    yield sub
    sub.stop()


def test_ingest_readiness_checks_postgres_and_mqtt(pg_pool: Any, mqtt_ingest: Any) -> None:
    checks = {
        "postgres": readiness.postgres(pg_pool),
        "mqtt": readiness.mqtt(mqtt_ingest.connected),
    }
    server = MetricsServer("127.0.0.1", 0, checks).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        with httpx.Client(timeout=10) as http:
            assert http.get(f"{base}/healthz").status_code == 200
            down = http.get(f"{base}/readyz")  # not connected to the broker yet
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert "mqtt" in down.json()["detail"] and "postgres" not in down.json()["detail"]
            mqtt_ingest.start()
            assert mqtt_ingest.connected.wait(10)
            up = http.get(f"{base}/readyz")
            assert up.status_code == 200, up.text
            assert up.json()["checks"] == {"postgres": "ok", "mqtt": "ok"}
            scrape = http.get(f"{base}/metrics")
            assert scrape.status_code == 200
            assert "mallpulse_ingest_accepted_total" in scrape.text
    finally:
        server.stop()
