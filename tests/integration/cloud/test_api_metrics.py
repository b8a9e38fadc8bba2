"""The API's /metrics (latency by route template, method, status) and /readyz (PostgreSQL, and
Redis where configured) against the real services."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from psycopg_pool import ConnectionPool

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_store
from tests.fixtures.services import REDIS_URL

_COUNT = "mallpulse_http_request_duration_seconds_count"


def _samples(text: str, name: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def _app(settings: Settings, pool: Any) -> Iterator[TestClient]:
    from cloud.api.app import create_app

    with TestClient(create_app(settings, pool=pool), raise_server_exceptions=False) as c:
        yield c


def test_requests_are_counted_by_route_template(
    client: TestClient, token_for: Any, pg_pool: Any
) -> None:
    sid = f"met-{uuid.uuid4().hex[:8]}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="Metrics", timezone="UTC")
    before = _samples(client.get("/metrics").text, _COUNT)
    live = client.get(f"/v1/stores/{sid}/footfall/live",
                      headers=token_for(Role.STORE_MANAGER, {sid}))  # fmt: skip
    assert live.status_code == 200
    assert client.get(f"/no/such/{sid}").status_code == 404
    res = client.get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    after = _samples(res.text, _COUNT)
    key = ("/v1/stores/{store_id}/footfall/live", "GET", "200")
    assert after[key] == before.get(key, 0) + 1
    missing = ("unmatched", "GET", "404")
    assert after[missing] == before.get(missing, 0) + 1
    assert sid not in res.text  # raw paths never become label values


def test_readyz_checks_postgres(settings: Settings, pg_pool: Any) -> None:
    for client in _app(settings, pg_pool):
        res = client.get("/readyz")
        assert res.status_code == 200
        assert res.json() == {"status": "ok", "checks": {"postgres": "ok"}}  # Redis not set


def test_readyz_is_503_when_postgres_does_not_answer(settings: Settings) -> None:
    dead = ConnectionPool(
        "postgresql://postgres@127.0.0.1:1/none", min_size=0, max_size=1, open=True
    )
    try:
        for client in _app(settings, dead):
            res = client.get("/readyz")
            assert res.status_code == 503
            assert res.headers["content-type"].startswith("application/problem+json")
            assert "postgres" in res.json()["detail"]
            assert client.get("/healthz").status_code == 200  # liveness stays cheap
    finally:
        dead.close()


@pytest.mark.parametrize(
    ("redis_url", "status"),
    [(REDIS_URL, 200), ("redis://127.0.0.1:1/0", 503)],
    ids=["redis-up", "redis-down"],
)
def test_readyz_checks_redis_where_configured(
    settings: Settings, pg_pool: Any, redis_url: str, status: int
) -> None:
    with_redis = Settings(**{**settings.model_dump(), "redis_url": redis_url})
    for client in _app(with_redis, pg_pool):
        res = client.get("/readyz")
        assert res.status_code == status, res.text
        if status == 200:
            assert res.json()["checks"] == {"postgres": "ok", "redis": "ok"}
        else:
            assert "redis" in res.json()["detail"]
