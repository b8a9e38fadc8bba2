"""Messaging fixtures: a real SMTP server with STARTTLS and AUTH, a DKIM key, customers and
outbox rows on the test database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from cloud.crm.messaging.channels.email import DkimConfig, SmtpConfig
from tests.support.smtp import PASSWORD, USER, SmtpSink, start_sink

UNSUBSCRIBE_SECRET = "unsubscribe-test-secret-0f3a9c"


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    """A real aiosmtpd server requiring STARTTLS and AUTH; its messages in `.received()`."""
    sink, controller = start_sink(tmp_path)
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def dkim_key(tmp_path: Path) -> tuple[Path, bytes]:
    """A DKIM private key file and the TXT record that publishes its public key."""
    from tests.support.smtp import make_dkim_key

    return make_dkim_key(tmp_path)


@pytest.fixture
def smtp_config(smtp_sink: SmtpSink, dkim_key: tuple[Path, bytes]) -> SmtpConfig:
    """SMTP settings for the sink, with DKIM and one-click unsubscribe."""
    assert smtp_sink.ca_file is not None
    return SmtpConfig(
        host=smtp_sink.host,
        port=smtp_sink.port,
        ca_file=str(smtp_sink.ca_file),
        username=USER,
        password=SecretStr(PASSWORD),
        from_address="MallPulse <news@mail.mallpulse.test>",
        dkim=DkimConfig(
            domain="mail.mallpulse.test", selector="mp1", private_key_file=str(dkim_key[0])
        ),
        unsubscribe_url="https://mallpulse.test/v1/messaging/unsubscribe",
        unsubscribe_secret=SecretStr(UNSUBSCRIBE_SECRET),
    )


@pytest.fixture
def new_profile(database_url: str) -> Callable[..., int]:
    """Create a customer profile with the given attributes; its id."""

    def _make(attributes: dict[str, Any] | None = None) -> int:
        from psycopg.types.json import Jsonb

        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "INSERT INTO crm_profiles (identified, attributes) VALUES (true, %s) RETURNING id",
                (Jsonb(attributes or {}),),
            ).fetchone()
        assert row is not None
        return int(row[0])

    return _make


@pytest.fixture
def outbox_row(database_url: str) -> Callable[..., int]:
    """Insert a raw outbox row (as the consent flow does); its id."""

    def _make(profile_id: int, channel: str = "email", address: str = "ann@example.com") -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "INSERT INTO crm_message_outbox (profile_id, channel, address, template)"
                " VALUES (%s, %s, %s, 'raw') RETURNING id",
                (profile_id, channel, address),
            ).fetchone()
        assert row is not None
        return int(row[0])

    return _make
