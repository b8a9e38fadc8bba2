"""E-mail over a real SMTP server: STARTTLS, AUTH, a DKIM signature that verifies, RFC 8058
one-click unsubscribe headers with a signed token, SMTP refusals as typed errors, DSN receipts."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest

from cloud.crm.messaging import unsubscribe
from cloud.crm.messaging.channels.base import (
    InvalidAddressError,
    OutboundMessage,
    PermanentChannelError,
    ReceiptStatus,
    TransientChannelError,
)
from cloud.crm.messaging.channels.email import SmtpConfig, SmtpEmailChannel, parse_report
from tests.integration.cloud.messaging.conftest import UNSUBSCRIBE_SECRET
from tests.support.smtp import SmtpSink


def _verify(raw: bytes, txt: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mp1._domainkey.mail.mallpulse.test."
        return txt

    return bool(dkim.verify(raw, dnsfunc=dns))


def _message(message_id: int = 7, address: str = "ann@example.com") -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        address=address,
        subject="Spring sale: 20% off",
        body="Hello Ann,\nthe spring sale starts today.",
        html="<p>Hello Ann,</p><p>the spring sale starts today.</p>",
        profile_id=42,
    )


def test_send_uses_starttls_auth_and_a_verifiable_dkim_signature(
    smtp_sink: SmtpSink, smtp_config: SmtpConfig, dkim_key: tuple[Path, bytes]
) -> None:
    channel = SmtpEmailChannel(smtp_config)
    try:
        ids = [channel.send(_message(i, f"c{i}@example.com")) for i in (1, 2, 3)]
    finally:
        channel.close()
    received = smtp_sink.received()
    assert len(received) == 3
    assert ids == [
        "<mp-1@mail.mallpulse.test>",
        "<mp-2@mail.mallpulse.test>",
        "<mp-3@mail.mallpulse.test>",
    ]
    for got, provider_id in zip(received, ids, strict=True):
        assert got.tls and got.authenticated
        assert _verify(got.content, dkim_key[1]), got.content[:400]
        msg = message_from_bytes(got.content, policy=policy.default)
        assert msg["Message-ID"] == provider_id
        signature = str(msg["DKIM-Signature"]).replace(" ", "").replace("\n", "")
        assert "list-unsubscribe:list-unsubscribe-post" in signature.lower()
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = str(msg["List-Unsubscribe"]).strip("<>")
        assert url.startswith("https://mallpulse.test/v1/messaging/unsubscribe/")
        who = unsubscribe.verify(UNSUBSCRIBE_SECRET, url.rsplit("/", 1)[1])
        assert (who.profile_id, who.channel) == (42, "email")
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        assert text is not None and "spring sale" in text.get_content()
        assert html is not None and "<p>Hello Ann,</p>" in html.get_content()


def test_a_tampered_message_fails_dkim(
    smtp_sink: SmtpSink, smtp_config: SmtpConfig, dkim_key: tuple[Path, bytes]
) -> None:
    channel = SmtpEmailChannel(smtp_config)
    channel.send(_message())
    channel.close()
    [got] = smtp_sink.received()
    assert not _verify(got.content.replace(b"spring sale", b"summer sale"), dkim_key[1])


def test_refusals_and_bad_addresses_are_typed_errors(
    smtp_sink: SmtpSink, smtp_config: SmtpConfig
) -> None:
    channel = SmtpEmailChannel(smtp_config)
    with pytest.raises(InvalidAddressError, match="invalid e-mail address"):
        channel.send(_message(address="not an address"))
    with pytest.raises(InvalidAddressError, match="550"):
        channel.send(_message(address="ghost@example.com"))
    smtp_sink.on_data = lambda _m: "451 4.3.0 try again later"
    with pytest.raises(TransientChannelError, match="451"):
        channel.send(_message())
    smtp_sink.on_data = lambda _m: "554 5.7.1 rejected as spam"
    with pytest.raises(PermanentChannelError, match="554"):
        channel.send(_message())
    smtp_sink.on_data = None
    assert channel.send(_message(9)) == "<mp-9@mail.mallpulse.test>"  # reconnected after 5xx
    channel.close()


def test_wrong_password_and_a_dead_server_are_transient(smtp_config: SmtpConfig) -> None:
    from pydantic import SecretStr

    bad = SmtpEmailChannel(smtp_config.model_copy(update={"password": SecretStr("wrong")}))
    with pytest.raises(TransientChannelError, match="535"):
        bad.send(_message())
    from tests.support.smtp import free_port

    dead = SmtpEmailChannel(smtp_config.model_copy(update={"port": free_port()}))
    with pytest.raises(TransientChannelError, match="connection failed"):
        dead.send(_message())


DSN = b"""\
From: MAILER-DAEMON@mx.example.com
To: news@mail.mallpulse.test
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; ghost@example.com
Action: failed
Status: 5.1.1

--B
Content-Type: text/rfc822-headers

Message-ID: <mp-7@mail.mallpulse.test>
Subject: Spring sale

--B--
"""


def test_dsn_and_complaint_reports_become_receipts() -> None:
    receipt = parse_report(DSN)
    assert (receipt.provider_id, receipt.status) == (
        "<mp-7@mail.mallpulse.test>",
        ReceiptStatus.HARD_BOUNCE,
    )
    soft = parse_report(DSN.replace(b"Status: 5.1.1", b"Status: 4.2.2"))
    assert soft.status is ReceiptStatus.SOFT_BOUNCE
    arf = (
        DSN.replace(b"delivery-status;", b"feedback-report;")
        .replace(b"message/delivery-status", b"message/feedback-report")
        .replace(b"Action: failed", b"Feedback-Type: abuse")
    )
    assert parse_report(arf).status is ReceiptStatus.COMPLAINT
    with pytest.raises(PermanentChannelError, match="multipart/report"):
        parse_report(b"Subject: hi\n\nnot a report")
