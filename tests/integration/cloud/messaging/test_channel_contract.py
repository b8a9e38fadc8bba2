"""One contract every channel adapter keeps (river's checks/ style), run over each of them: built
from its config by `type`, `send` returns the provider's id, refusals are typed errors, receipts
and inbound messages that are not theirs are refused, and idempotent channels really are."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from cloud.crm.messaging.channels.base import (
    Channel,
    ChannelError,
    OutboundMessage,
    PermanentChannelError,
    build_channel,
    parse_config,
    registered_types,
)
from cloud.crm.messaging.channels.email import SmtpConfig
from tests.support.smtp import SmtpSink

CHANNEL_TYPES = ["smtp", "inapp"]


def test_every_registered_adapter_is_under_contract() -> None:
    assert registered_types() == sorted(CHANNEL_TYPES)


def test_an_unknown_type_is_named() -> None:
    with pytest.raises(ValueError, match="unknown channel type 'carrier-pigeon'"):
        parse_config({"type": "carrier-pigeon"})


@pytest.fixture(params=CHANNEL_TYPES)
def adapter(
    request: pytest.FixtureRequest, database_url: str, new_profile: Callable[..., int]
) -> Iterator[tuple[Channel, Callable[[], OutboundMessage], Callable[[str], bool]]]:
    """(channel, a factory of valid messages, did-the-provider-get(provider_id))."""
    kind = str(request.param)
    if kind == "smtp":
        config: Any = request.getfixturevalue("smtp_config")
        sink: SmtpSink = request.getfixturevalue("smtp_sink")
        raw = config.model_dump(mode="json")
        raw["password"] = config.password.get_secret_value()
        raw["unsubscribe_secret"] = config.unsubscribe_secret.get_secret_value()
        config = parse_config(raw)
        assert isinstance(config, SmtpConfig)

        def got(pid: str) -> bool:
            return any(pid.encode() in m.content for m in sink.received())
    else:
        config = parse_config({"type": "inapp"})

        def got(pid: str) -> bool:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT 1 FROM crm_msg_inbox WHERE id = %s", (int(pid.split("-")[1]),)
                ).fetchone()
            return row is not None

    channel = build_channel(config, database_url)
    profile = new_profile()
    outbox: Callable[..., int] = request.getfixturevalue("outbox_row")

    def message() -> OutboundMessage:
        mid = outbox(profile)
        return OutboundMessage(
            message_id=mid,
            address="ann@example.com",
            subject="Hi",
            body="Hello",
            profile_id=profile,
        )

    yield channel, message, got
    close = getattr(channel, "close", None)
    if close is not None:
        close()


def test_send_returns_the_providers_id(adapter: Any) -> None:
    channel, message, got = adapter
    first, second = message(), message()
    ids = [channel.send(first), channel.send(second)]
    assert all(isinstance(i, str) and i for i in ids) and ids[0] != ids[1]
    assert all(got(i) for i in ids)


def test_idempotent_channels_drop_a_second_send(adapter: Any) -> None:
    channel, message, _ = adapter
    assert isinstance(channel.idempotent, bool) and isinstance(channel.name, str)
    msg = message()
    if channel.idempotent:
        assert channel.send(msg) == channel.send(msg)


def test_a_message_without_a_recipient_is_a_permanent_error(adapter: Any) -> None:
    channel, message, _ = adapter
    base = message()
    broken = OutboundMessage(message_id=base.message_id, address="", body="x", profile_id=None)
    with pytest.raises(PermanentChannelError):
        channel.send(broken)


@pytest.mark.parametrize("raw", [b"", b"garbage", b"\xff\xfe{not json"])
def test_foreign_receipts_and_inbound_messages_are_refused(adapter: Any, raw: bytes) -> None:
    channel = adapter[0]
    with pytest.raises(ChannelError):
        channel.parse_receipt(raw)
    with pytest.raises(ChannelError):
        channel.parse_inbound(raw)
