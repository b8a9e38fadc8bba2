"""Cloud integration fixtures: settings on the test database and an API client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role, issue_token
from cloud.core.settings import Settings


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    """Settings pointing at the session's test database."""
    # Rate limits are off for the functional tests sharing this app (they would trip them);
    # tests/integration/cloud/security proves the limits on apps of their own.
    return Settings(
        database_url=database_url,
        jwt_secret="test-secret-6419141c349984bebf288ebe8004b997d45210a7f05ca398",
        ratelimit_enabled=False,
        api_public_docs=True,
    )


@pytest.fixture(scope="session")
def client(settings: Settings, pg_pool: Any) -> Iterator[TestClient]:
    """A TestClient of the real app on the test database."""
    from cloud.api.app import create_app

    with TestClient(create_app(settings, pool=pg_pool)) as c:
        yield c


@pytest.fixture(scope="session")
def token_for(settings: Settings) -> Any:
    """Issue auth headers: token_for(Role.X, stores={...})."""

    def _make(
        role: Role, stores: set[str] | None = None, subject: str = "tester"
    ) -> dict[str, str]:
        tok = issue_token(settings, subject=subject, role=role, store_ids=stores or set())
        return {"Authorization": f"Bearer {tok}"}

    return _make
