"""What the provider adapters put on the wire, as checked by the local provider servers: request
shapes, credentials (Basic, bearer, access_token, OAuth2 JWT assertion, ES256 provider token,
VAPID), token caching and refresh, and what a wrong credential is told to fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.crm.messaging.channels.base import (
    Channel,
    InvalidAddressError,
    OutboundMessage,
    PermanentChannelError,
    TemplateNotApprovedError,
    TransientChannelError,
    build_channel,
    parse_config,
)
from cloud.crm.messaging.channels.http import MAX_RETRY_AFTER_S, e164, retry_after
from tests.support import providers as prov


def _msg(address: str, mid: int = 7, **headers: str) -> OutboundMessage:
    return OutboundMessage(message_id=mid, address=address, subject="Sale", body="20% off today",
                           headers=headers)  # fmt: skip


@pytest.fixture
def tw() -> Iterator[prov.TwilioServer]:
    server = prov.TwilioServer()
    yield server
    server.close()


def _twilio(server: prov.TwilioServer, **extra: Any) -> Channel:
    raw = {"type": "twilio", "base_url": server.url, "account_sid": server.account_sid,
           "auth_token": server.auth_token, "from_number": "+14155552671"} | extra  # fmt: skip
    return build_channel(parse_config(raw))


def test_twilio_posts_the_form(tw: prov.TwilioServer) -> None:
    channel = _twilio(tw, status_callback_url="https://mallpulse.test/hooks/sms")
    sid = channel.send(_msg("+49 (151) 2345-6789"))
    assert sid.startswith("SM")
    assert tw.accepted[0].parsed == {
        "To": "+4915123456789", "Body": "20% off today", "From": "+14155552671",
        "StatusCallback": "https://mallpulse.test/hooks/sms",
    }  # fmt: skip


def test_twilio_wrong_credentials_say_what_to_fix(tw: prov.TwilioServer) -> None:
    channel = _twilio(tw, auth_token="wrong")
    with pytest.raises(PermanentChannelError, match=r"20003.*check account_sid and auth_token"):
        channel.send(_msg("+4915123456789"))


def test_twilio_config_needs_a_sender() -> None:
    with pytest.raises(ValueError, match="from_number or messaging_service_sid"):
        parse_config({"type": "twilio", "account_sid": "AC1", "auth_token": "t"})


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("+4915123456789", "+4915123456789"),
        ("+49 151 2345-6789", "+4915123456789"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("015123456789", None),  # national format: no country
        ("+0123456789", None),
        ("+4912", None),  # too short
        ("+1 555 0100", None),  # not in the numbering plan
        ("+447700900123", None),  # Ofcom drama range: not a real number
        ("ann@example.com", None),
        ("", None),
    ],
)
def test_e164(address: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidAddressError):
            e164(address)
    else:
        assert e164(address) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 60.0), ("7", 7.0), ("0.5", 0.5), ("-3", 0.0), ("nan", 60.0), ("inf", 60.0),
        ("1e400", 60.0), ("999999999", MAX_RETRY_AFTER_S), ("soon", 60.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: retry now
    ],
)  # fmt: skip
def test_retry_after(header: str | None, expected: float) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    assert retry_after(httpx.Response(429, headers=headers), 60.0) == expected


def test_retry_after_as_a_future_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    wait = retry_after(httpx.Response(429, headers={"Retry-After": when}), 60.0)
    assert 3600 < wait <= 7200


@pytest.fixture
def wa() -> Iterator[prov.WhatsAppServer]:
    server = prov.WhatsAppServer()
    yield server
    server.close()


def _whatsapp(server: prov.WhatsAppServer, **extra: Any) -> Channel:
    raw = {"type": "whatsapp", "base_url": server.url, "phone_number_id": server.phone_number_id,
           "access_token": server.token} | extra  # fmt: skip
    return build_channel(parse_config(raw))


def test_whatsapp_text_and_template_shapes(wa: prov.WhatsAppServer) -> None:
    channel = _whatsapp(wa)
    assert channel.send(_msg("+4915123456789")).startswith("wamid.")
    channel.send(_msg("+4915123456789", **{"whatsapp-template": "order_ready",
                                           "whatsapp-language": "zh_CN",
                                           "whatsapp-params": '["安", "A-17"]'}))  # fmt: skip
    text, template = (r.parsed for r in wa.accepted)
    assert text == {"messaging_product": "whatsapp", "recipient_type": "individual",
                    "to": "4915123456789", "type": "text",
                    "text": {"preview_url": False, "body": "20% off today"}}  # fmt: skip
    assert template["template"] == {
        "name": "order_ready", "language": {"code": "zh_CN"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "安"},
                                                       {"type": "text", "text": "A-17"}]}],
    }  # fmt: skip


def test_whatsapp_unknown_template_and_bad_params(wa: prov.WhatsAppServer) -> None:
    channel = _whatsapp(wa)
    with pytest.raises(TemplateNotApprovedError, match="132001"):
        channel.send(_msg("+4915123456789", **{"whatsapp-template": "never_submitted"}))
    with pytest.raises(PermanentChannelError, match="JSON array"):
        channel.send(_msg("+4915123456789", **{"whatsapp-template": "order_ready",
                                               "whatsapp-params": '{"a": 1}'}))  # fmt: skip
    assert wa.accepted == []


def test_whatsapp_expired_token_says_what_to_fix(wa: prov.WhatsAppServer) -> None:
    with pytest.raises(PermanentChannelError, match=r"190.*renew access_token"):
        _whatsapp(wa, access_token="expired").send(_msg("+4915123456789"))


@pytest.fixture
def wc() -> Iterator[prov.WeChatServer]:
    server = prov.WeChatServer()
    yield server
    server.close()


def _wechat(server: prov.WeChatServer, **extra: Any) -> Channel:
    raw = {"type": "wechat", "base_url": server.url, "app_id": server.app_id,
           "app_secret": server.app_secret} | extra  # fmt: skip
    return build_channel(parse_config(raw))


def test_wechat_token_is_cached_and_refreshed_on_40001(wc: prov.WeChatServer) -> None:
    channel = _wechat(wc)
    template = {"wechat-template-id": "tmpl-points-earned", "wechat-data": '{"points": 120}',
                "wechat-url": "https://mallpulse.test/points"}  # fmt: skip
    assert channel.send(_msg("oAbc1234567890", 1, **template)).isdigit()
    assert channel.send(_msg("oAbc1234567890", 2)) == "wechat-cs-2"
    assert wc.token_requests == 1
    wc.mode = "token_expired"  # the server forgets every token it issued
    assert channel.send(_msg("oAbc1234567890", 3, **template)).isdigit()
    assert wc.token_requests == 2 and len(wc.accepted) == 3
    sent = wc.accepted[0].parsed
    assert sent["data"] == {"points": {"value": "120"}} and sent["url"].endswith("/points")
    assert wc.accepted[1].parsed == {"touser": "oAbc1234567890", "msgtype": "text",
                                     "text": {"content": "20% off today"}}  # fmt: skip


def test_wechat_refusals(wc: prov.WeChatServer) -> None:
    channel = _wechat(wc)
    wc.mode = "not_subscribed"
    with pytest.raises(InvalidAddressError, match="43004"):
        channel.send(_msg("oAbc1234567890"))
    wc.mode = None
    with pytest.raises(InvalidAddressError, match="openid"):
        channel.send(_msg("not an openid!"))
    with pytest.raises(PermanentChannelError, match=r"40125.*whitelist"):
        _wechat(wc, app_secret="wrong").send(_msg("oAbc1234567890"))


@pytest.fixture
def fcm(tmp_path: Path) -> Iterator[tuple[prov.FcmServer, dict[str, Any]]]:
    server = prov.FcmServer()
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(server.account()))
    raw = {"type": "fcm", "base_url": server.url, "project_id": server.project_id,
           "service_account_file": str(key)}  # fmt: skip
    yield server, raw
    server.close()


def test_fcm_assertion_token_cache_and_refresh(fcm: tuple[prov.FcmServer, dict[str, Any]]) -> None:
    server, raw = fcm
    channel = build_channel(parse_config(raw))
    token = "c" * 150
    name = channel.send(_msg(token, 41))
    assert name.startswith(f"projects/{server.project_id}/messages/")
    channel.send(_msg(token, 42))
    assert server.token_requests == 1
    server.mode = "token_expired"
    channel.send(_msg(token, 43))
    assert server.token_requests == 2
    assert server.accepted[0].parsed == {
        "token": token, "notification": {"title": "Sale", "body": "20% off today"},
        "data": {"mp_message_id": "41"},
    }  # fmt: skip


def test_fcm_foreign_key_is_refused_with_a_hint(
    fcm: tuple[prov.FcmServer, dict[str, Any]], tmp_path: Path
) -> None:
    server, raw = fcm
    other, _ = prov.service_account(server.url + "/token")  # a key the server does not trust
    (tmp_path / "other.json").write_text(json.dumps(other))
    channel = build_channel(
        parse_config(raw | {"service_account_file": str(tmp_path / "other.json")})
    )
    with pytest.raises(PermanentChannelError, match=r"invalid_grant.*service account"):
        channel.send(_msg("c" * 150))


@pytest.fixture
def apns(tmp_path: Path) -> Iterator[tuple[prov.ApnsServer, dict[str, Any]]]:
    server = prov.ApnsServer()
    p8 = tmp_path / "AuthKey.p8"
    p8.write_bytes(server.p8())
    raw = {"type": "apns", "base_url": server.url, "team_id": server.team_id,
           "key_id": server.key_id, "private_key_file": str(p8), "topic": server.topic,
           "http2": False}  # fmt: skip
    yield server, raw
    server.close()


def test_apns_headers_and_expired_provider_token(
    apns: tuple[prov.ApnsServer, dict[str, Any]],
) -> None:
    server, raw = apns
    channel = build_channel(parse_config(raw))
    first = channel.send(_msg("ab" * 32, 5))
    assert channel.send(_msg("ab" * 32, 5)) == first  # same outbox message, same apns-id
    headers = server.accepted[0].headers
    assert headers["apns-topic"] == server.topic and headers["apns-push-type"] == "alert"
    assert server.accepted[0].parsed["aps"]["alert"] == {"title": "Sale", "body": "20% off today"}
    server.mode = "token_expired"  # the token in use is refused once: a new one is made
    channel.send(_msg("ab" * 32, 6))
    assert len(server.accepted) == 3


@pytest.mark.parametrize(
    ("extra", "match"),
    [({"topic": "com.other.app"}, "DeviceTokenNotForTopic"),
     ({"team_id": "OTHERTEAM1"}, "InvalidProviderToken.*team_id")],
)  # fmt: skip
def test_apns_misconfiguration(
    apns: tuple[prov.ApnsServer, dict[str, Any]], extra: dict[str, str], match: str
) -> None:
    channel = build_channel(parse_config(apns[1] | extra))
    with pytest.raises(PermanentChannelError, match=match):
        channel.send(_msg("ab" * 32))


def test_apns_unregistered_device(apns: tuple[prov.ApnsServer, dict[str, Any]]) -> None:
    apns[0].mode = "unregistered"
    with pytest.raises(InvalidAddressError, match="410 Unregistered"):
        build_channel(parse_config(apns[1])).send(_msg("ab" * 32))


def test_apns_http2_without_h2_is_refused_at_start(
    apns: tuple[prov.ApnsServer, dict[str, Any]],
) -> None:
    try:
        import h2  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="h2 package"):
            build_channel(parse_config(apns[1] | {"http2": True}))
    else:
        assert build_channel(parse_config(apns[1] | {"http2": True})) is not None


@pytest.fixture
def ali() -> Iterator[prov.AliyunSmsServer]:
    server = prov.AliyunSmsServer(templates=frozenset({"SMS_1001", "SMS_2002"}))
    yield server
    server.close()


def _aliyun(server: prov.AliyunSmsServer, **extra: Any) -> Channel:
    raw = {"type": "aliyun_sms", "base_url": server.url, "access_key_id": server.key_id,
           "access_key_secret": server.secret, "sign_name": server.sign_name,
           "template_code": "SMS_1001"} | extra  # fmt: skip
    return build_channel(parse_config(raw))


def test_aliyun_signed_request_and_template(ali: prov.AliyunSmsServer) -> None:
    channel = _aliyun(ali)
    assert "^" in channel.send(_msg("+86 138 0013 8000", 3))
    channel.send(_msg("+4915123456789", 4, **{"aliyun-template": "SMS_2002",
                                                "aliyun-params": '{"code": 4711}'}))  # fmt: skip
    china, abroad = (r.parsed for r in ali.accepted)
    assert (china["PhoneNumbers"], china["TemplateCode"], china["OutId"]) == (
        "13800138000",
        "SMS_1001",
        "3",
    )
    assert json.loads(china["TemplateParam"]) == {"content": "20% off today"}
    assert (abroad["PhoneNumbers"], abroad["TemplateCode"]) == ("4915123456789", "SMS_2002")
    assert json.loads(abroad["TemplateParam"]) == {"code": "4711"}


def test_aliyun_refusals(ali: prov.AliyunSmsServer) -> None:
    with pytest.raises(PermanentChannelError, match=r"SignatureDoesNotMatch.*access_key_secret"):
        _aliyun(ali, access_key_secret="wrong").send(_msg("+8613800138000"))
    with pytest.raises(TemplateNotApprovedError, match="SMS_SIGNATURE_ILLEGAL"):
        _aliyun(ali, sign_name="Other").send(_msg("+8613800138000"))
    with pytest.raises(TemplateNotApprovedError, match="needs an approved template"):
        _aliyun(ali, template_code=None).send(_msg("+8613800138000"))
    assert ali.accepted == []


def test_provider_requests_are_counted_by_outcome(tw: prov.TwilioServer) -> None:
    from prometheus_client import REGISTRY

    def count(outcome: str) -> float:
        labels = {"provider": "twilio", "outcome": outcome}
        return (
            REGISTRY.get_sample_value("mallpulse_messaging_provider_requests_total", labels) or 0.0
        )

    before = {o: count(o) for o in ("2xx", "4xx", "transport_error")}
    channel = _twilio(tw)
    channel.send(_msg("+4915123456789"))
    tw.mode = "invalid_number"
    with pytest.raises(InvalidAddressError):
        channel.send(_msg("+4915123456789"))
    tw.close()
    with pytest.raises(TransientChannelError):
        _twilio(tw, connect_timeout_s=1.0).send(_msg("+4915123456789"))
    assert {o: count(o) - n for o, n in before.items()} == {
        "2xx": 1,
        "4xx": 1,
        "transport_error": 1,
    }
