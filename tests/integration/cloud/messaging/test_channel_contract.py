"""One contract every channel adapter keeps (river's checks/ style), run over each of them: built
from its config by `type`, `send` returns the provider's id, refusals are typed errors, receipts
and inbound messages that are not theirs are refused, and idempotent channels really are. The HTTP
adapters also keep one failure contract against their local provider server: rate limited ->
RateLimitedError with a wait, invalid number -> InvalidAddressError, template not approved ->
TemplateNotApprovedError, 5xx or no server -> TransientChannelError."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from cloud.crm.messaging.channels.base import (
    Channel,
    ChannelError,
    InvalidAddressError,
    OutboundMessage,
    PermanentChannelError,
    RateLimitedError,
    TemplateNotApprovedError,
    TransientChannelError,
    build_channel,
    parse_config,
    registered_types,
)
from cloud.crm.messaging.channels.email import SmtpConfig
from tests.support import providers as prov
from tests.support.smtp import SmtpSink

HTTP_TYPES = ["twilio", "aliyun_sms", "whatsapp", "wechat", "fcm", "apns", "webpush"]
CHANNEL_TYPES = ["smtp", "inapp", *HTTP_TYPES]
#: The failure switches each provider has (SMS, push: no templates to approve).
TEMPLATED = {"whatsapp", "wechat", "aliyun_sms"}


def test_every_registered_adapter_is_under_contract() -> None:
    assert registered_types() == sorted(CHANNEL_TYPES)


def test_an_unknown_type_is_named() -> None:
    with pytest.raises(ValueError, match="unknown channel type 'carrier-pigeon'"):
        parse_config({"type": "carrier-pigeon"})


@pytest.fixture
def http_provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[prov.Setup]:
    """The provider server for the adapter type in request.param, and the adapter's config."""
    provider = prov.setup(str(request.param), tmp_path)
    yield provider
    provider.server.close()


@pytest.fixture(params=CHANNEL_TYPES)
def adapter(
    request: pytest.FixtureRequest,
    database_url: str,
    new_profile: Callable[..., int],
    tmp_path: Path,
) -> Iterator[tuple[Channel, Callable[[], OutboundMessage], Callable[[str], bool]]]:
    """(channel, a factory of valid messages, did-the-provider-get(provider_id))."""
    kind = str(request.param)
    address: Callable[[], str] = lambda: "ann@example.com"  # noqa: E731
    headers: dict[str, str] = {}
    server: prov.ProviderServer | None = None
    got: Callable[[str], bool]
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
    elif kind == "inapp":
        config = parse_config({"type": "inapp"})

        def got(pid: str) -> bool:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT 1 FROM crm_msg_inbox WHERE id = %s", (int(pid.split("-")[1]),)
                ).fetchone()
            return row is not None
    else:
        provider = prov.setup(kind, tmp_path)
        server, address, headers = provider.server, provider.address, provider.headers
        config = parse_config(provider.raw)
        got = server.got

    channel = build_channel(config, database_url)
    profile = new_profile()
    outbox: Callable[..., int] = request.getfixturevalue("outbox_row")

    def message() -> OutboundMessage:
        mid = outbox(profile)
        return OutboundMessage(
            message_id=mid, address=address(), subject="Hi", body="Hello",
            profile_id=profile, headers=headers,
        )  # fmt: skip

    yield channel, message, got
    close = getattr(channel, "close", None)
    if close is not None:
        close()
    if server is not None:
        server.close()


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


@pytest.mark.parametrize("raw", [b"", b"garbage", b"\xff\xfe{not json", b"<xml><a>1</a></xml>"])
def test_foreign_receipts_and_inbound_messages_are_refused(adapter: Any, raw: bytes) -> None:
    channel = adapter[0]
    with pytest.raises(ChannelError):
        channel.parse_receipt(raw)
    with pytest.raises(ChannelError):
        channel.parse_inbound(raw)


# --- the failure contract of the HTTP adapters -------------------------------------------------

FAILURES: list[tuple[str, type[ChannelError]]] = [
    ("rate_limited", RateLimitedError),
    ("invalid_number", InvalidAddressError),
    ("server_error", TransientChannelError),
    ("template_not_approved", TemplateNotApprovedError),
]
CASES = [
    pytest.param(kind, mode, error, id=f"{kind}-{mode}")
    for kind in HTTP_TYPES
    for mode, error in FAILURES
    if mode != "template_not_approved" or kind in TEMPLATED
]


def _message(provider: prov.Setup, message_id: int = 1) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id, address=provider.address(), subject="Hi", body="Hello",
        headers=provider.headers,
    )  # fmt: skip


@pytest.mark.parametrize(("http_provider", "mode", "error"), CASES, indirect=["http_provider"])
def test_provider_refusals_are_typed(
    http_provider: prov.Setup, mode: str, error: type[ChannelError]
) -> None:
    channel = build_channel(parse_config(http_provider.raw))
    message = _message(http_provider)
    http_provider.server.mode = mode
    with pytest.raises(ChannelError) as caught:
        channel.send(message)
    assert type(caught.value) is error, caught.value
    assert caught.value.transient == issubclass(error, TransientChannelError)
    if isinstance(caught.value, RateLimitedError):
        wait = caught.value.retry_after_s
        assert math.isfinite(wait) and wait > 0
    assert http_provider.server.accepted == []
    http_provider.server.mode = None
    assert http_provider.server.got(channel.send(message))


@pytest.mark.parametrize("http_provider", HTTP_TYPES, indirect=True)
def test_no_answer_is_transient(http_provider: prov.Setup) -> None:
    http_provider.server.close()
    raw = http_provider.raw | {"timeout_s": 2.0, "connect_timeout_s": 1.0}
    channel = build_channel(parse_config(raw))
    with pytest.raises(TransientChannelError):
        channel.send(_message(http_provider))


@pytest.mark.parametrize("http_provider", HTTP_TYPES, indirect=True)
def test_configs_forbid_unknown_fields_and_hide_secrets(http_provider: prov.Setup) -> None:
    with pytest.raises(ValidationError, match="extra"):
        parse_config(http_provider.raw | {"surprise": 1})
    shown = repr(parse_config(http_provider.raw))
    secrets = ["auth_token", "access_token", "app_secret", "vapid_private_key", "access_key_secret"]
    assert not any(
        isinstance(http_provider.raw.get(k), str) and http_provider.raw[k] in shown for k in secrets
    )
