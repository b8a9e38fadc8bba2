"""Web Push fixtures: a local push service, a messaging config with a webpush channel on it, and
the real app with that config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.core.settings import Settings
from tests.support.providers import PushService

VAPID_PRIVATE = "Q0hG1DWGJ8tCTcOEpQY7yEF3B2bS9rw3mhX-a-3-7Qs"
SUBSCRIPTION_SECRET = "push-subscription-secret-5d1e0c"


@pytest.fixture(scope="module")
def push_service() -> Iterator[PushService]:
    """A Web Push service on a loopback port."""
    service = PushService()
    yield service
    service.close()


@pytest.fixture(scope="module")
def webpush_raw() -> dict[str, Any]:
    """The webpush channel config (raw JSON)."""
    return {"type": "webpush", "vapid_private_key": VAPID_PRIVATE,
            "subject": "mailto:push@mallpulse.test", "allow_http_endpoints": True,
            "subscription_secret": SUBSCRIPTION_SECRET}  # fmt: skip


@pytest.fixture(scope="module")
def push_settings(
    settings: Settings, webpush_raw: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """The session settings with a messaging config that has a webpush channel."""
    path: Path = tmp_path_factory.mktemp("push") / "messaging.json"
    path.write_text(json.dumps({"channels": {"webpush": webpush_raw, "inapp": {"type": "inapp"}}}))
    return settings.model_copy(update={"messaging_config_file": str(path)})


@pytest.fixture(scope="module")
def push_client(push_settings: Settings, pg_pool: Any) -> Iterator[TestClient]:
    """The app with web push configured."""
    from cloud.api.app import create_app

    with TestClient(create_app(push_settings, pool=pg_pool)) as c:
        yield c
