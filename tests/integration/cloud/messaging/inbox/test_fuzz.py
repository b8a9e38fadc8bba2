"""The tracking and inbox routes under schemathesis, with tracking configured: fuzzed bodies,
queries, tokens and ids never get a 5xx, errors are problem bodies, 2xx bodies match their
documented schema."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.crm.messaging import inbox
from cloud.crm.messaging.channels.base import InboundMessage
from tests.integration.cloud.fuzzing import app_schema, fuzz, operations

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MINE = (
    r"^/v1/messaging/(webhooks|inbound|t/|conversations|campaigns|messages/\{message_id\}/events)"
)


def test_tracking_and_inbox_routes_get_no_server_errors(
    settings: Settings,
    pg_pool: Any,
    tracking_client: TestClient,
    token_for: Any,
    tmp_path: Path,
) -> None:
    admin = token_for(Role.ADMIN)
    with pg_pool.connection() as conn:
        got = inbox.receive(
            conn, "email",
            InboundMessage(f"fz.{uuid.uuid4().hex[:8]}@example.org", "hi", f"<{uuid.uuid4()}@x>"),
        )  # fmt: skip
        conn.commit()
    email = {"type": "smtp", "host": "127.0.0.1", "from_address": "news@mail.mallpulse.test"}
    (tmp_path / "m.json").write_text(json.dumps({"channels": {"email": email}}))
    configured = settings.model_copy(update={"messaging_config_file": str(tmp_path / "m.json")})
    schema = app_schema(configured, pg_pool).include(path_regex=MINE)
    ops = operations(schema)
    assert len(ops) >= 12
    fuzz(
        ops, admin, max_examples=4, conformance=True,
        path_values={"conversation_id": got.conversation_id, "channel": "email"},
    )  # fmt: skip
