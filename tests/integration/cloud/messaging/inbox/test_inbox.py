"""The unified inbox over real SMTP, the real app and database: mail threaded by reply token,
In-Reply-To and the sender's address (resolved by the identity code), retried deliveries stored
once, no open relay, one conversation per customer across channels, STOP keywords, and agent
replies that go out through the normal send path on the channel the customer last wrote on."""

from __future__ import annotations

import hashlib
import hmac
import random
import smtplib
import time
import uuid
from email.message import EmailMessage
from typing import Any

import phonenumbers
import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.crm.messaging import inbound_smtp, inbox
from cloud.crm.messaging.channels.base import InboundMessage
from tests.integration.cloud.messaging.inbox.conftest import REPLY_DOMAIN
from tests.integration.cloud.messaging.tracking.conftest import HOOK_SECRET, LINK_SECRET, dsn
from tests.integration.cloud.security.crm_helpers import problem

C = "/v1/messaging/conversations"


def _phone() -> str:
    while True:
        n = f"+1415555{random.randint(1000, 9999)}"
        if phonenumbers.is_valid_number(phonenumbers.parse(n)):
            return n


def _customer(
    client: TestClient, auth: dict[str, str], phone: str | None = None
) -> tuple[int, str]:
    email = f"in.{uuid.uuid4().hex[:12]}@example.org"
    ids = {"email": email, **({"phone": phone} if phone else {})}
    res = client.post("/v1/customers", json={"identifiers": ids}, headers=auth)
    assert res.status_code in (200, 201), res.text
    return int(res.json()["profile_id"]), email


def _mail(sender: str, to: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, headers.pop("Subject", "Question")
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content(body)
    return msg


def _send(server: tuple[str, int], msg: EmailMessage, to: str | None = None) -> None:
    with smtplib.SMTP(*server, timeout=10) as smtp:
        smtp.send_message(msg, to_addrs=[to or str(msg["To"])])


def _conversation(client: TestClient, auth: dict[str, str], cid: int) -> dict[str, Any]:
    res = client.get(f"{C}/{cid}", headers=auth)
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def _conversation_of(database_url: str, profile_id: int) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT id FROM crm_msg_conversations WHERE profile_id = %s", (profile_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_mail_threads_by_address_reference_and_token_and_a_reply_uses_the_send_path(
    tracking_client: TestClient,
    marketer: dict[str, str],
    inbound_server: tuple[str, int],
    database_url: str,
) -> None:
    pid, email = _customer(tracking_client, marketer)
    support = f"support@{REPLY_DOMAIN}"
    first = _mail(email, support, "Where is my order?", Subject="Order 42")
    _send(inbound_server, first)
    _send(inbound_server, first)  # redelivered by the sending server: stored once
    cid = _conversation_of(database_url, pid)
    conv = _conversation(tracking_client, marketer, cid)
    assert [(m["direction"], m["body"].strip()) for m in conv["messages"]] == [
        ("in", "Where is my order?")
    ]
    assert (conv["status"], conv["channel"], conv["subject"]) == ("open", "email", "Order 42")

    key = {"Idempotency-Key": uuid.uuid4().hex}
    res = tracking_client.post(
        f"{C}/{cid}/reply", json={"body": "On its way!"}, headers={**marketer, **key}
    )
    assert res.status_code == 202, res.text
    sent = res.json()["message"]
    assert (sent["channel"], sent["template"], sent["purpose"], sent["priority"]) == (
        "email", "inbox_reply", "transactional", "high",
    )  # fmt: skip
    again = tracking_client.post(
        f"{C}/{cid}/reply", json={"body": "On its way!"}, headers={**marketer, **key}
    )
    assert again.json()["message"]["id"] == sent["id"] and again.json()["message"]["replayed"]
    out = [m for m in again.json()["conversation"]["messages"] if m["direction"] == "out"]
    assert len(out) == 1 and out[0]["outbox_id"] == sent["id"] and out[0]["delivery"] == "queued"
    assert out[0]["subject"] == "Re: Order 42"
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT address, payload->>'body', payload->>'subject' FROM crm_message_outbox"
            " WHERE id = %s", (sent["id"],),
        ).fetchone()  # fmt: skip
    assert row == (email, "On its way!", "Re: Order 42")

    # the customer answers from another mailbox, replying to our message: threaded by reference
    work = f"work.{uuid.uuid4().hex[:8]}@example.net"
    ref = f"<mp-{sent['id']}@mail.mallpulse.test>"
    _send(inbound_server, _mail(work, support, "Thanks", In_Reply_To=ref, References=ref))
    # and to the reply address of the conversation from a third one: threaded by the token
    token_to = inbox.reply_address(cid, LINK_SECRET, REPLY_DOMAIN)
    _send(inbound_server, _mail(f"x.{uuid.uuid4().hex[:8]}@example.net", token_to, "P.S."))
    conv = _conversation(tracking_client, marketer, cid)
    assert [m["body"].strip() for m in conv["messages"]] == [
        "Where is my order?", "On its way!", "Thanks", "P.S.",
    ]  # fmt: skip

    # a forged token threads nowhere: the stranger gets a conversation of their own
    stranger = f"s.{uuid.uuid4().hex[:8]}@example.net"
    forged = f"reply+c{cid}x0123456789abcdef@{REPLY_DOMAIN}"
    _send(inbound_server, _mail(stranger, forged, "hello?"))
    assert len(_conversation(tracking_client, marketer, cid)["messages"]) == 4
    with psycopg.connect(database_url) as conn:
        other = conn.execute(
            "SELECT c.profile_id FROM crm_msg_conversation_items i"
            " JOIN crm_msg_conversations c ON c.id = i.conversation_id WHERE i.address = %s",
            (stranger,),
        ).fetchone()
    assert other is not None and other[0] != pid


def test_no_open_relay_no_sender_refused_and_reports_become_receipts(
    inbound_server: tuple[str, int], pg_pool: Any, database_url: str, new_profile: Any
) -> None:
    with smtplib.SMTP(*inbound_server, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("a@example.org", ["victim@elsewhere.test"], b"Subject: x\r\n\r\nhi")
        with pytest.raises(smtplib.SMTPDataError) as err:
            smtp.sendmail("a@example.org", [f"s@{REPLY_DOMAIN}"], b"Subject: x\r\n\r\nno from")
        assert err.value.smtp_code == 550
    pid = new_profile()
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO crm_message_outbox (profile_id, channel, address, template, status,"
            " sent_at) VALUES (%s, 'email', 'ann@example.com', 'raw', 'sent', now()) RETURNING id",
            (pid,),
        ).fetchone()
        assert row is not None
        mid = int(row[0])
        conn.execute(
            "UPDATE crm_message_outbox SET provider_id = %s WHERE id = %s",
            (f"<mp-{mid}@mail.mallpulse.test>", mid),
        )
    report = dsn(f"<mp-{mid}@mail.mallpulse.test>", action="failed", status="5.1.1")
    with smtplib.SMTP(*inbound_server, timeout=10) as smtp:
        smtp.sendmail("", [f"bounces@{REPLY_DOMAIN}"], report)
    with psycopg.connect(database_url) as conn:
        kinds = conn.execute(
            "SELECT kind FROM crm_msg_events WHERE message_id = %s", (mid,)
        ).fetchall()
    assert kinds == [("bounced",)]


def test_a_database_failure_is_a_451_not_a_loss(pg_pool: Any) -> None:
    from psycopg_pool import ConnectionPool

    dead = ConnectionPool(
        "postgresql://127.0.0.1:1/none", min_size=0, max_size=1, open=False, timeout=0.5
    )
    dead.open(wait=False)
    try:
        handler = inbound_smtp.InboundHandler(dead, [REPLY_DOMAIN], None)
        raw = _mail("a@example.org", f"s@{REPLY_DOMAIN}", "hi").as_bytes()
        assert handler.store(raw, [f"s@{REPLY_DOMAIN}"]).startswith("451 ")
    finally:
        dead.close()


def test_one_conversation_across_channels_and_a_reply_goes_to_the_last_channel(
    tracking_client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    phone = _phone()
    pid, email = _customer(tracking_client, marketer, phone=phone)
    sid = f"SM{uuid.uuid4().hex}"
    with psycopg.connect(database_url) as conn:
        a = inbox.receive(conn, "email", InboundMessage(email, "by mail", f"<{uuid.uuid4()}@x>"))
        b = inbox.receive(conn, "sms", InboundMessage(phone, "by text", sid))
        again = inbox.receive(conn, "sms", InboundMessage(phone, "by text", sid))
        conn.commit()
    assert a.conversation_id == b.conversation_id == again.conversation_id
    assert (a.profile_id, b.profile_id, b.created, again.created) == (pid, pid, True, False)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    res = tracking_client.post(
        f"{C}/{a.conversation_id}/reply", json={"body": "Hi!"}, headers={**marketer, **key}
    )
    assert res.status_code == 202, res.text
    assert res.json()["message"]["channel"] == "sms"
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT address FROM crm_message_outbox WHERE id = %s", (res.json()["message"]["id"],)
        ).fetchone()
    assert row == (phone,)


def test_stop_keyword_suppresses_marketing_on_that_channel(
    tracking_client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    phone = _phone()
    pid, _ = _customer(tracking_client, marketer, phone=phone)
    with psycopg.connect(database_url) as conn:
        inbox.receive(conn, "sms", InboundMessage(phone, " STOP ", f"SM{uuid.uuid4().hex}"))
        conn.commit()
        row = conn.execute(
            "SELECT channel, reason FROM crm_msg_suppressions WHERE profile_id = %s", (pid,)
        ).fetchall()
    assert row == [("sms", "unsubscribe")]


def test_agent_actions_and_the_signed_inbound_webhook(
    tracking_client: TestClient, marketer: dict[str, str]
) -> None:
    _, email = _customer(tracking_client, marketer)
    raw = _mail(email, f"help@{REPLY_DOMAIN}", "via webhook").as_bytes()
    url = "/v1/messaging/inbound/email"
    problem(tracking_client.post(url, content=raw), 401)
    ts = f"{time.time():.0f}"
    bad = {"X-MallPulse-Timestamp": ts, "X-MallPulse-Signature": "0" * 64}
    problem(tracking_client.post(url, content=raw, headers=bad), 403)
    sig = hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    signed = {"X-MallPulse-Timestamp": ts, "X-MallPulse-Signature": sig}
    res = tracking_client.post(url, content=raw, headers=signed)
    assert res.status_code == 200 and res.json()["created"], res.text
    cid = res.json()["conversation_id"]
    assert tracking_client.post(url, content=raw, headers=signed).json()["created"] is False
    junk = b"not a mail"
    sig = hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + junk, hashlib.sha256).hexdigest()
    problem(
        tracking_client.post(url, content=junk, headers={**signed, "X-MallPulse-Signature": sig}),
        422,
    )

    who = f"agent-{uuid.uuid4().hex[:6]}"
    res = tracking_client.post(f"{C}/{cid}/assign", json={"assignee": who}, headers=marketer)
    assert res.status_code == 200 and res.json()["assignee"] == who
    mine = tracking_client.get(C, params={"assignee": who}, headers=marketer).json()
    assert [c["id"] for c in mine] == [cid]
    closed = tracking_client.post(f"{C}/{cid}/close", headers=marketer).json()
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    listed = tracking_client.get(C, params={"status": "closed", "assignee": who}, headers=marketer)
    assert [c["id"] for c in listed.json()] == [cid]
    reopened = tracking_client.post(f"{C}/{cid}/reopen", headers=marketer).json()
    assert (reopened["status"], reopened["closed_at"]) == ("open", None)
    tracking_client.post(f"{C}/{cid}/close", headers=marketer)
    # the customer writes again: the conversation opens by itself
    raw2 = _mail(email, f"help@{REPLY_DOMAIN}", "me again").as_bytes()
    sig = hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + raw2, hashlib.sha256).hexdigest()
    res = tracking_client.post(url, content=raw2, headers={**signed, "X-MallPulse-Signature": sig})
    assert res.json()["conversation_id"] == cid
    assert _conversation(tracking_client, marketer, cid)["status"] == "open"
    # a forwarded mail to the conversation's reply address threads by the token, whoever sends it
    to = inbox.reply_address(cid, LINK_SECRET, REPLY_DOMAIN)
    raw3 = _mail(f"o.{uuid.uuid4().hex[:8]}@example.net", to, "forwarded").as_bytes()
    sig = hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + raw3, hashlib.sha256).hexdigest()
    res = tracking_client.post(url, content=raw3, headers={**signed, "X-MallPulse-Signature": sig})
    assert res.json()["conversation_id"] == cid, res.text
    unassigned = tracking_client.post(
        f"{C}/{cid}/assign", json={"assignee": None}, headers=marketer
    )
    assert unassigned.json()["assignee"] is None
    problem(tracking_client.get(f"{C}/999999999", headers=marketer), 404)
    problem(tracking_client.get(C), 401)
    problem(tracking_client.post(f"{C}/{cid}/reply", json={"body": "x"}, headers=marketer), 422)
