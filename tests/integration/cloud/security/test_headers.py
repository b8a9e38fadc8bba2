"""Security headers on every answer, no caching of API data, a framing-proof dashboard, HSTS
behind TLS, API docs private unless a setting opens them, and no server banner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloud.api.headers import API_CSP, DASHBOARD_CSP
from cloud.core.security import Role, issue_token
from tests.integration.cloud.security.auth_apps import SECRET, app_client, auth_settings, bearer


def _common(res: Any) -> None:
    assert res.headers["x-content-type-options"] == "nosniff"
    assert res.headers["x-frame-options"] == "DENY"
    assert res.headers["referrer-policy"] == "no-referrer"


def test_api_answers_are_not_cached_sniffed_or_framed(database_url: str, pg_pool: Any) -> None:
    settings = auth_settings(database_url)
    marketer = bearer(issue_token(settings, subject="m", role=Role.HQ_MARKETER))
    with app_client(settings, pg_pool) as c:
        for res in (
            c.get("/v1/customers", headers=marketer),  # personal data
            c.get("/v1/stores", headers=marketer),
            c.get("/v1/customers"),  # a 401 problem body too
        ):
            _common(res)
            assert res.headers["cache-control"] == "no-store", res.request.url
            assert res.headers["content-security-policy"] == API_CSP
            assert "strict-transport-security" not in res.headers
        assert "no-store" not in c.get("/healthz").headers.get("cache-control", "")


def test_the_dashboard_may_not_be_framed(database_url: str, pg_pool: Any) -> None:
    with app_client(auth_settings(database_url), pg_pool) as c:
        page = c.get("/dashboard")
        script = c.get("/dashboard/dashboard.js")
    for res in (page, script):
        _common(res)
        assert res.headers["content-security-policy"] == DASHBOARD_CSP
    assert "frame-ancestors 'none'" in DASHBOARD_CSP and "script-src 'self'" in DASHBOARD_CSP
    assert script.headers["cache-control"] == "no-cache"  # a route's own header wins


def test_hsts_only_when_served_over_tls(database_url: str, pg_pool: Any) -> None:
    tls = auth_settings(database_url, api_hsts_max_age_s=31536000)
    with app_client(tls, pg_pool) as c:
        hsts = c.get("/healthz").headers["strict-transport-security"]
    assert hsts == "max-age=31536000; includeSubDomains"


def test_api_docs_are_private_by_default(database_url: str, pg_pool: Any) -> None:
    settings = auth_settings(database_url)
    assert settings.api_public_docs is False
    with app_client(settings, pg_pool) as c:
        assert c.get("/docs").status_code == 404
        assert c.get("/redoc").status_code == 404
        assert c.get("/openapi.json").status_code == 401
        signed_in = bearer(issue_token(settings, subject="dev", role=Role.STORE_MANAGER))
        spec = c.get("/openapi.json", headers=signed_in)
        assert spec.status_code == 200 and "/v1/stores" in spec.json()["paths"]
    with app_client(auth_settings(database_url, api_public_docs=True), pg_pool) as c:
        assert c.get("/docs").status_code == 200
        assert c.get("/openapi.json").status_code == 200


@pytest.fixture
def served_api(database_url: str) -> Any:
    """`mallpulse cloud api` as an operator starts it, on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MALLPULSE_DATABASE_URL": database_url, "MALLPULSE_JWT_SECRET": SECRET,
           "MALLPULSE_RATELIMIT_STORAGE": "memory", "MALLPULSE_LOG_LEVEL": "WARNING"}  # fmt: skip
    cmd = [str(Path(sys.executable).with_name("mallpulse")), "cloud", "api", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(
                        f"the API did not start: {proc.stderr.read() if proc.stderr else ''}"
                    )
                threading.Event().wait(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stderr:
            proc.stderr.close()


def test_the_server_banner_names_no_server(served_api: str) -> None:
    with urllib.request.urlopen(f"{served_api}/healthz", timeout=10) as res:
        assert res.status == 200
        assert res.headers.get("server") is None, res.headers.get("server")


def test_the_served_api_ignores_forwarded_for_without_a_trusted_proxy(served_api: str) -> None:
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default; the API must not, or a local
    # client could pose as a new address for every failed attempt.
    codes = []
    for i in range(11):
        req = urllib.request.Request(f"{served_api}/v1/stores", headers={
            "X-API-Key": "mp_wrong", "X-Forwarded-For": f"203.0.113.{i}"})  # fmt: skip
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError as err:
            codes.append(err.code)
            err.close()
    assert codes == [401] * 10 + [429]
