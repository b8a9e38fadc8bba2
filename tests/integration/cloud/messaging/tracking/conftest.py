"""Tracking fixtures: the app with an e-mail channel and a tracking config (link secret and
signed webhooks), and a sent message of a campaign."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.crm.messaging import tracking
from tests.integration.cloud.security.crm_helpers import customer, headers

LINK_SECRET = "tracking-link-secret-5b1c0e"
HOOK_SECRET = "webhook-secret-e-mail-91aa2f"
BASE = "https://t.mallpulse.test"


@pytest.fixture(scope="module")
def tracking_client(
    settings: Settings, pg_pool: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app with an SMTP e-mail channel whose receipts come in through a signed webhook."""
    from cloud.api.app import create_app

    folder = tmp_path_factory.mktemp("tracking")
    email = {"type": "smtp", "host": "127.0.0.1", "from_address": "news@mail.mallpulse.test"}
    (folder / "messaging.json").write_text(json.dumps({"channels": {"email": email}}))
    (folder / "tracking.json").write_text(
        json.dumps(
            {
                "secret": LINK_SECRET,
                "base_url": BASE,
                "webhooks": {"email": {"scheme": "hmac", "secret": HOOK_SECRET}},
                "reply_domain": "reply.mallpulse.test",
            }
        )
    )
    app = create_app(
        settings.model_copy(update={"messaging_config_file": str(folder / "messaging.json")}),
        pool=pg_pool,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(tracking.ENV, str(folder / "tracking.json"))
        with TestClient(app) as c:
            yield c


@pytest.fixture(scope="module")
def marketer(token_for: Any) -> dict[str, str]:
    """A headquarters marketer."""
    return headers(token_for, Role.HQ_MARKETER)


@pytest.fixture
def sent_message(
    tracking_client: TestClient, marketer: dict[str, str], database_url: str
) -> dict[str, Any]:
    """A sent e-mail of a campaign of its own: id, profile, campaign, provider id."""
    pid, email = customer(tracking_client, marketer)
    campaign = f"spring-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO crm_message_outbox (profile_id, channel, address, template, status,"
            " campaign, purpose, sent_at) VALUES (%s, 'email', %s, 'raw', 'sent', %s,"
            " 'marketing', now()) RETURNING id",
            (pid, email, campaign),
        ).fetchone()
        assert row is not None
        mid = int(row[0])
        provider_id = f"<mp-{mid}@mail.mallpulse.test>"
        conn.execute(
            "UPDATE crm_message_outbox SET provider_id = %s WHERE id = %s", (provider_id, mid)
        )
    return {"id": mid, "profile_id": pid, "campaign": campaign, "provider_id": provider_id}


def dsn(provider_id: str, action: str = "delivered", status: str = "2.0.0") -> bytes:
    """A delivery status notification about one message."""
    return f"""\
From: MAILER-DAEMON@mx.example.com
To: news@mail.mallpulse.test
Subject: Delivery report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Report.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; ann@example.com
Action: {action}
Status: {status}

--B
Content-Type: text/rfc822-headers

Message-ID: {provider_id}
Subject: Spring sale

--B--
""".encode()
