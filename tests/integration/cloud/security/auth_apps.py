"""Helpers of the authentication tests: apps with their own settings (limits, docs, secrets)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from cloud.core.settings import Settings

SECRET = "auth-test-9c2f4e8a1b7d3f60e5a9c1d8b2f7e4a03d6c9b1e8f2a5d7c"
OLD_SECRET = "auth-old-3e7b1d9f5a2c8e4b0d6f1a9c3e5b7d2f8a4c6e0b9d1f3a5c"


def auth_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings on the test database with the test secret; limits off unless overridden."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "jwt_secret": SECRET,
        "ratelimit_enabled": False,
        "token_revocation_cache_s": 0,
    }
    return Settings(**{**values, **overrides})


@contextmanager
def app_client(
    settings: Settings, pool: Any, *, client: tuple[str, int] = ("198.51.100.7", 40000)
) -> Iterator[TestClient]:
    """A TestClient of create_app(settings) whose TCP peer is `client`."""
    from cloud.api.app import create_app

    with TestClient(create_app(settings, pool=pool), client=client) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}
