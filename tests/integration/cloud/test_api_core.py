"""The API core: probes, problem details, request ids, bearer tokens and API keys."""

from __future__ import annotations

import time
from typing import Any

import jwt
import psycopg
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from cloud.api.deps import MarketerDep, PrincipalDep
from cloud.core.errors import SettingsError
from cloud.core.security import Principal, Role
from cloud.core.settings import Settings
from cloud.db.repositories.auth import create_api_key, revoke_api_key


def test_probes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    assert ready.json()["checks"]["postgres"] == "ok"  # readiness tests its dependencies


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    res = client.get("/v1/nope", headers={"X-Request-ID": "abc123"})
    assert res.status_code == 404
    assert res.headers["content-type"] == "application/problem+json"
    body = res.json()
    assert body["status"] == 404 and body["instance"] == "/v1/nope"
    assert body["request_id"] == "abc123" and res.headers["x-request-id"] == "abc123"


@pytest.fixture(scope="module")
def guarded(settings: Settings, pg_pool: Any) -> TestClient:
    """An app with two guarded test routes on the real auth dependencies."""
    from cloud.api.app import create_app

    app: FastAPI = create_app(settings, pool=pg_pool)
    router = APIRouter()

    @router.get("/whoami")
    def whoami(p: PrincipalDep) -> dict[str, Any]:
        return {"subject": p.subject, "role": p.role.value, "stores": sorted(p.store_ids)}

    @router.get("/crm-only")
    def crm_only(p: MarketerDep) -> dict[str, str]:
        return {"ok": p.subject}

    app.include_router(router)
    return TestClient(app)


def test_missing_credentials_is_401_problem(guarded: TestClient) -> None:
    res = guarded.get("/whoami")
    assert res.status_code == 401
    assert res.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in res.json()["detail"]


def test_bearer_token_roles(guarded: TestClient, token_for: Any) -> None:
    res = guarded.get("/whoami", headers=token_for(Role.STORE_MANAGER, {"s1"}, "ann"))
    assert res.json() == {"subject": "ann", "role": "store_manager", "stores": ["s1"]}
    assert guarded.get("/crm-only", headers=token_for(Role.HQ_MARKETER)).status_code == 200
    denied = guarded.get("/crm-only", headers=token_for(Role.DEVICE))
    assert denied.status_code == 403 and denied.json()["type"].endswith("/forbidden")


def test_tampered_and_expired_tokens(guarded: TestClient, settings: Settings) -> None:
    forged = jwt.encode(
        {"sub": "x", "role": "admin", "iss": "mallpulse", "exp": int(time.time()) + 60},
        "wrong-secret-" + "y" * 32,
        algorithm="HS256",
    )
    assert guarded.get("/whoami", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    expired = jwt.encode(
        {"sub": "x", "role": "admin", "iss": "mallpulse", "exp": int(time.time()) - 5},
        secret,
        algorithm="HS256",
    )
    res = guarded.get("/whoami", headers={"Authorization": f"Bearer {expired}"})
    assert res.status_code == 401 and "expired" in res.json()["detail"]


def test_api_key_lifecycle(guarded: TestClient, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        key_id, key = create_api_key(conn, name="pos-sync", role=Role.HQ_MARKETER)
    assert guarded.get("/crm-only", headers={"X-API-Key": key}).json() == {"ok": "apikey:pos-sync"}
    with psycopg.connect(database_url) as conn:
        assert revoke_api_key(conn, key_id)
    assert guarded.get("/crm-only", headers={"X-API-Key": key}).status_code == 401


def test_store_scoping() -> None:
    mgr = Principal(subject="m", role=Role.STORE_MANAGER, store_ids=frozenset({"s1"}))
    assert mgr.can_see_store("s1") and not mgr.can_see_store("s2")
    assert Principal(subject="h", role=Role.HQ_MARKETER).can_see_store("s2")
    assert not Principal(subject="d", role=Role.DEVICE).can_see_store("s1")


def test_app_refuses_to_start_without_secret(database_url: str) -> None:
    from cloud.api.app import create_app

    with pytest.raises(SettingsError, match="MALLPULSE_JWT_SECRET"):
        create_app(Settings(database_url=database_url))
