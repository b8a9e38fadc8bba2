"""An HTTP adapter under the real dispatcher (SMS through the local Twilio server): sent with the
provider's id, a rate limit deferred by the provider's Retry-After, an invalid number failed with
the provider's code, a 500 retried, and an answer lost after the provider accepted the message
marked `uncertain` and never sent again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from cloud.crm.identity.service import ingest_record
from cloud.crm.messaging import repository as repo
from cloud.crm.messaging import service
from cloud.crm.messaging.channels.base import build_channel, parse_config
from cloud.crm.messaging.config import MessagingConfig
from cloud.crm.messaging.dispatch import Dispatcher
from tests.support.providers import TwilioServer

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


@dataclass
class Env:
    """A fresh database, the Twilio server and a dispatcher sending SMS through it."""

    conn: psycopg.Connection[Any]
    server: TwilioServer
    dispatcher: Dispatcher

    def queue(self, phone: str, key: str) -> int:
        rec = ingest_record(self.conn, source="pos", identifiers={"phone": phone}, attributes={})
        out = service.send(
            self.conn, profile_id=rec.profile_id, channel="sms", template="otp",
            variables={"code": "4711"}, purpose="transactional", priority="high", locale=None,
            idempotency_key=key,
        )  # fmt: skip
        self.conn.commit()
        return int(out["id"])

    def row(self, mid: int) -> dict[str, Any]:
        found = repo.get_message(self.conn, mid)
        self.conn.commit()
        assert found is not None
        return found


@pytest.fixture
def env(fresh_database: Callable[..., str]) -> Iterator[Env]:
    url, server = fresh_database(), TwilioServer()
    sms = parse_config({"type": "twilio", "base_url": server.url,
                        "account_sid": server.account_sid, "auth_token": server.auth_token,
                        "from_number": "+14155552671", "timeout_s": 1.0})  # fmt: skip
    config = MessagingConfig(channels={"sms": sms}, backoff_base_s=60, max_attempts=5)
    channels = {name: build_channel(cfg, url) for name, cfg in config.channels.items()}
    with psycopg.connect(url) as conn:
        repo.upsert_template(conn, name="otp", channel="sms", locale="en", format="text",
                             subject=None, body="Your code: {{ code }}")  # fmt: skip
        conn.commit()
        yield Env(conn, server, Dispatcher(config=config, channels=channels, clock=lambda: NOW))
    server.close()
    for channel in channels.values():
        getattr(channel, "close", lambda: None)()


def test_sent_deferred_retried_failed_and_uncertain(env: Env) -> None:
    sent = env.queue("+4915123456789", "a")
    assert env.dispatcher.run(env.conn).sent == 1
    row = env.row(sent)
    assert row["status"] == "sent" and env.server.got(row["provider_id"])
    assert env.server.accepted[0].parsed["Body"] == "Your code: 4711"

    env.server.mode = "rate_limited"
    limited = env.queue("+4915123456780", "b")
    env.dispatcher.run(env.conn)
    row = env.row(limited)
    assert row["status"] == "queued" and row["not_before"] >= NOW + timedelta(seconds=7)
    assert "20429" in row["last_error"]

    env.server.mode = "server_error"
    flaky = env.queue("+4915123456781", "c")
    env.dispatcher.run(env.conn)
    assert env.row(flaky)["status"] == "queued" and "HTTP 500" in env.row(flaky)["last_error"]

    env.server.mode = "invalid_number"
    bad = env.queue("+4915123456782", "d")
    env.dispatcher.run(env.conn)
    row = env.row(bad)
    assert row["status"] == "failed" and "21211" in row["last_error"]
    assert len(env.server.accepted) == 1

    # one fresh database for both parts: creating and migrating one is the slow bit
    env.server.mode = "accept_then_hang"
    mid = env.queue("+4915123456789", "hang")
    assert env.dispatcher.run(env.conn).uncertain == 1
    row = env.row(mid)
    assert row["status"] == "uncertain" and "timed out" in row["last_error"]
    reasons = [d["reason"] for d in repo.decisions(env.conn, mid)]
    assert any("outcome unknown" in r and "not resent" in r for r in reasons), reasons
    env.server.mode = None
    env.dispatcher.run(env.conn)
    assert len(env.server.accepted) == 2 and env.row(mid)["status"] == "uncertain"
