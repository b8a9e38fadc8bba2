"""Inbox fixtures: the tracking app (signed webhooks, reply domain) and the inbound SMTP server
on a free port, storing into the test database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cloud.crm.messaging import inbound_smtp
from tests.integration.cloud.messaging.tracking.conftest import (  # noqa: F401 (fixtures)
    LINK_SECRET,
    marketer,
    tracking_client,
)
from tests.support.smtp import free_port

REPLY_DOMAIN = "reply.mallpulse.test"


@pytest.fixture
def inbound_server(pg_pool: Any) -> Iterator[tuple[str, int]]:
    """The inbound SMTP server for the reply domain: (host, port)."""
    port = free_port()
    controller = inbound_smtp.start(
        pg_pool, host="127.0.0.1", port=port, domains=[REPLY_DOMAIN], secret=LINK_SECRET
    )
    try:
        yield "127.0.0.1", port
    finally:
        controller.stop()
