"""Receipts and inbound messages of the provider adapters, as (raw webhook, expected) tables in
each provider's own shapes; webhook signature helpers checked against tampering."""

from __future__ import annotations

# ruff: noqa: RUF001 (Chinese text uses full-width punctuation)
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from cloud.crm.messaging.channels import aliyun, twilio, wechat, whatsapp
from cloud.crm.messaging.channels.base import (
    Channel,
    DeliveryReceipt,
    InboundMessage,
    PermanentChannelError,
    ReceiptStatus,
    build_channel,
    parse_config,
)

TWILIO = {"type": "twilio", "account_sid": "AC1", "auth_token": "t", "from_number": "+14155552671"}
WHATSAPP = {"type": "whatsapp", "phone_number_id": "1065", "access_token": "t"}
WECHAT = {"type": "wechat", "app_id": "wx01", "app_secret": "s"}
ALIYUN = {"type": "aliyun_sms", "access_key_id": "LTAI1", "access_key_secret": "s",
          "sign_name": "MallPulse"}  # fmt: skip


def _report(success: bool, code: str) -> bytes:
    return json.dumps([{"phone_number": "13800138000", "send_time": "2026-12-05 10:00:00",
                        "report_time": "2026-12-05 10:00:08", "success": success,
                        "err_code": code, "err_msg": "x", "sms_size": "1",
                        "biz_id": "932702304080415357^0", "out_id": "17"}]).encode()  # fmt: skip


def _channel(raw: dict[str, Any]) -> Channel:
    return build_channel(parse_config(raw))


def _wa(value: dict[str, Any]) -> bytes:
    change = {"field": "messages", "value": {"messaging_product": "whatsapp", **value}}
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    ).encode()


def _wa_status(status: str, errors: list[dict[str, Any]] | None = None) -> bytes:
    entry: dict[str, Any] = {"id": "wamid.A1", "status": status, "timestamp": "1733400000",
                             "recipient_id": "4915123456789"}  # fmt: skip
    if errors is not None:
        entry["errors"] = errors
    return _wa({"statuses": [entry]})


def _xml(**fields: str) -> bytes:
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>".encode()


def _job(status: str) -> bytes:
    return _xml(ToUserName="gh_1", FromUserName="oAbc123456", CreateTime="1733400000",
                MsgType="event", Event="TEMPLATESENDJOBFINISH", MsgID="200228332",
                Status=status)  # fmt: skip


def _form(**fields: str) -> bytes:
    return urlencode(fields).encode()


RECEIPTS: list[tuple[dict[str, Any], bytes, DeliveryReceipt | None]] = [
    (TWILIO, _form(MessageSid="SM1", MessageStatus="delivered"),
     DeliveryReceipt("SM1", ReceiptStatus.DELIVERED, detail="delivered")),
    (TWILIO, _form(MessageSid="SM1", MessageStatus="read"),
     DeliveryReceipt("SM1", ReceiptStatus.READ, detail="read")),
    (TWILIO, _form(MessageSid="SM1", MessageStatus="undelivered", ErrorCode="30005"),
     DeliveryReceipt("SM1", ReceiptStatus.HARD_BOUNCE, detail="undelivered 30005")),
    (TWILIO, _form(MessageSid="SM1", MessageStatus="failed", ErrorCode="30001"),
     DeliveryReceipt("SM1", ReceiptStatus.SOFT_BOUNCE, detail="failed 30001")),
    (TWILIO, _form(MessageSid="SM1", MessageStatus="sent"), None),
    (TWILIO, _form(MessageStatus="delivered"), None),
    (WHATSAPP, _wa_status("delivered"),
     DeliveryReceipt("wamid.A1", ReceiptStatus.DELIVERED, detail="delivered")),
    (WHATSAPP, _wa_status("read"), DeliveryReceipt("wamid.A1", ReceiptStatus.READ, detail="read")),
    (WHATSAPP, _wa_status("failed", [{"code": 131026, "title": "Message undeliverable"}]),
     DeliveryReceipt("wamid.A1", ReceiptStatus.HARD_BOUNCE,
                     detail="failed 131026: Message undeliverable")),
    (WHATSAPP, _wa_status("failed", [{"code": 131049, "title": "Not delivered"}]),
     DeliveryReceipt("wamid.A1", ReceiptStatus.SOFT_BOUNCE, detail="failed 131049: Not delivered")),
    (WHATSAPP, _wa_status("sent"), None),
    (WHATSAPP, _wa({"messages": [{"from": "49151", "id": "wamid.B", "type": "text",
                                  "text": {"body": "hi"}}]}), None),
    (ALIYUN, _report(True, "DELIVERED"),
     DeliveryReceipt("932702304080415357^0", ReceiptStatus.DELIVERED, detail="DELIVERED")),
    (ALIYUN, _report(False, "MK:0001"),
     DeliveryReceipt("932702304080415357^0", ReceiptStatus.HARD_BOUNCE, detail="MK:0001 x")),
    (ALIYUN, _report(False, "MK:0005"),
     DeliveryReceipt("932702304080415357^0", ReceiptStatus.SOFT_BOUNCE, detail="MK:0005 x")),
    (ALIYUN, b"[]", None),
    (ALIYUN, b'[{"success": true}]', None),
    (WECHAT, _job("success"), DeliveryReceipt("200228332", ReceiptStatus.DELIVERED,
                                              detail="success")),
    (WECHAT, _job("failed:user block"),
     DeliveryReceipt("200228332", ReceiptStatus.HARD_BOUNCE, detail="failed:user block")),
    (WECHAT, _job("failed: system failed"),
     DeliveryReceipt("200228332", ReceiptStatus.SOFT_BOUNCE, detail="failed: system failed")),
    (WECHAT, _xml(MsgType="text", FromUserName="oAbc123456", Content="hi", MsgId="1"), None),
    (WECHAT, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><A>&a;</A></xml>',
     None),
]  # fmt: skip


@pytest.mark.parametrize(("config", "raw", "expected"), RECEIPTS)
def test_receipts(config: dict[str, Any], raw: bytes, expected: DeliveryReceipt | None) -> None:
    channel = _channel(config)
    if expected is None:
        with pytest.raises(PermanentChannelError):
            channel.parse_receipt(raw)
    else:
        assert channel.parse_receipt(raw) == expected


INBOUND: list[tuple[dict[str, Any], bytes, InboundMessage | None]] = [
    (TWILIO, _form(MessageSid="SM9", SmsSid="SM9", From="+4915123456789", To="+14155552671",
                   Body="STOP please", NumMedia="0"),
     InboundMessage("+4915123456789", "STOP please", "SM9")),
    (TWILIO, _form(MessageSid="SM9", Body="no sender"), None),
    (WHATSAPP, _wa({"contacts": [{"wa_id": "4915123456789"}],
                    "messages": [{"from": "4915123456789", "id": "wamid.IN", "type": "text",
                                  "timestamp": "1733400000", "text": {"body": "Is it open?"},
                                  "context": {"from": "1065", "id": "wamid.OUT"}}]}),
     InboundMessage("+4915123456789", "Is it open?", "wamid.IN", in_reply_to="wamid.OUT")),
    (WHATSAPP, _wa({"messages": [{"from": "4915123456789", "id": "wamid.IMG", "type": "image",
                                  "image": {"caption": "this one", "id": "m1"}}]}),
     InboundMessage("+4915123456789", "this one", "wamid.IMG")),
    (WHATSAPP, _wa_status("delivered"), None),
    (WECHAT, _xml(ToUserName="gh_1", FromUserName="oAbc123456", CreateTime="1733400000",
                  MsgType="text", Content="营业时间？", MsgId="2345"),
     InboundMessage("oAbc123456", "营业时间？", "2345")),
    (WECHAT, _xml(FromUserName="oAbc123456", MsgType="image", MediaId="M1", MsgId="2346"),
     InboundMessage("oAbc123456", "[image] M1", "2346")),
    (WECHAT, _job("success"), None),
    (ALIYUN, json.dumps([{"phone_number": "13800138000", "send_time": "2026-12-05 10:01:00",
                          "content": "退订", "sign_name": "MallPulse", "dest_code": "1234",
                          "sequence_id": 1234567}]).encode(),
     InboundMessage("+8613800138000", "退订", "1234567")),
    (ALIYUN, _report(True, "DELIVERED"), None),
]  # fmt: skip


@pytest.mark.parametrize(("config", "raw", "expected"), INBOUND)
def test_inbound(config: dict[str, Any], raw: bytes, expected: InboundMessage | None) -> None:
    channel = _channel(config)
    if expected is None:
        with pytest.raises(PermanentChannelError):
            channel.parse_inbound(raw)
    else:
        assert channel.parse_inbound(raw) == expected


def test_twilio_signature() -> None:
    url, raw = "https://mallpulse.test/hooks/sms", _form(MessageSid="SM1", MessageStatus="read")
    good = twilio.signature(url, {"MessageSid": "SM1", "MessageStatus": "read"}, "tok")
    assert twilio.verify_signature(url, raw, good, "tok")
    assert not twilio.verify_signature(url, raw, good, "other-token")
    assert not twilio.verify_signature(url + "?x=1", raw, good, "tok")
    assert not twilio.verify_signature(url, raw.replace(b"read", b"sent"), good, "tok")


def test_whatsapp_signature() -> None:
    raw = _wa_status("delivered")
    import hashlib
    import hmac

    header = "sha256=" + hmac.new(b"app-secret", raw, hashlib.sha256).hexdigest()
    assert whatsapp.verify_signature(raw, header, "app-secret")
    assert not whatsapp.verify_signature(raw + b" ", header, "app-secret")
    assert not whatsapp.verify_signature(raw, header, "other")


def test_wechat_signature() -> None:
    good = wechat.webhook_signature("tok", "1733400000", "nonce1")
    assert len(good) == 40
    assert wechat.verify_signature("tok", "1733400000", "nonce1", good)
    assert not wechat.verify_signature("tok", "1733400001", "nonce1", good)
    # the three values are sorted before hashing: the order they arrive in does not matter
    assert wechat.webhook_signature("1733400000", "nonce1", "tok") == good


def test_aliyun_signature_matches_the_documented_example() -> None:
    # The worked example of Alibaba Cloud's SMS API signature documentation (GET, "testSecret").
    params = {
        "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
        "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}', "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }  # fmt: skip
    assert aliyun.signature(params, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
