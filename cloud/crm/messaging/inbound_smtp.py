"""Inbound e-mail: an aiosmtpd server that takes customers' mail for our domains into the
unified inbox (threaded by the reply+<token>@domain recipient, In-Reply-To/References and the
sender's address) and delivery reports sent back to us as receipts.

Run it with `mallpulse cloud messaging inbound-smtp`; put it behind the MX of the reply domain.
A message is answered 250 only after it is committed; a database failure is a 451 (the sending
server tries again later), a message we cannot read a 550 - never silent loss.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from psycopg_pool import ConnectionPool

from cloud.crm.messaging import inbox, service, tracking
from cloud.crm.messaging.channels.base import InboundMessage, PermanentChannelError
from cloud.crm.messaging.channels.email import parse_report
from cloud.crm.messaging.errors import MessagingInvalidInputError
from cloud.crm.messaging.templates import html_to_text

log = logging.getLogger(__name__)

#: Largest message taken (bytes); larger ones are refused by the server with 552.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
#: Headers naming where a message was sent (a webhook has no SMTP envelope).
_RCPT = ("To", "Cc", "Delivered-To", "X-Original-To")


@dataclass(frozen=True)
class ParsedMail:
    """An inbound e-mail as the inbox needs it."""

    message: InboundMessage
    references: list[str]
    recipients: list[str]


def parse_mail(raw: bytes) -> ParsedMail:
    """Sender, text, Message-ID (a digest of the content when there is none, so a redelivery is
    still one message), In-Reply-To and References; PermanentChannelError without a sender."""
    msg = message_from_bytes(raw, policy=policy.default)
    sender = parseaddr(str(msg.get("From", "")))[1]
    if not sender or "@" not in sender:
        raise PermanentChannelError("no From address")
    mid = str(msg.get("Message-ID", "")).strip()
    if not mid:
        mid = f"<sha256-{hashlib.sha256(raw).hexdigest()[:40]}@inbound>"
    text = ""
    part = msg.get_body(preferencelist=("plain", "html")) if msg.is_multipart() else msg
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
        except (LookupError, ValueError):  # an unknown charset or a broken encoding
            content = part.get_payload(decode=True) or b""
        text = content.decode(errors="replace") if isinstance(content, bytes) else str(content)
        if part.get_content_type() == "text/html":
            text = html_to_text(text)
    refs = str(msg.get("References", "")).split()
    in_reply_to = str(msg.get("In-Reply-To", "")).strip() or None
    subject = str(msg.get("Subject", "")).strip() or None
    return ParsedMail(
        InboundMessage(
            address=sender,
            body=text[:100_000],
            provider_id=mid[:500],
            in_reply_to=in_reply_to,
            subject=subject[:1000] if subject else None,
        ),
        refs[-20:],
        [a for _, a in getaddresses([str(v) for h in _RCPT for v in msg.get_all(h, [])]) if a],
    )


class InboundHandler:
    """The aiosmtpd handler: RCPT for our domains only; DATA stored before 250."""

    def __init__(self, pool: ConnectionPool, domains: Sequence[str], secret: str | None) -> None:
        self.pool = pool
        self.domains = {d.lower() for d in domains}
        self.secret = secret

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, _o: Any
    ) -> str:
        """Accept mail for our domains only (not an open relay)."""
        domain = address.rpartition("@")[2].lower()
        if domain not in self.domains:
            return "550 5.7.1 relaying denied"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Store the message (or the report) and answer once it is committed."""
        raw = envelope.original_content or b""
        return await asyncio.to_thread(self.store, raw, list(envelope.rcpt_tos))

    def store(self, raw: bytes, recipients: list[str]) -> str:
        """Store one message; the SMTP reply."""
        try:
            with self.pool.connection() as conn:
                reply = self._store(conn, raw, recipients)
                conn.commit()
                return reply
        except PermanentChannelError as exc:
            log.warning("inbound mail refused", extra={"reason": exc.detail})
            return f"550 5.6.0 {exc.detail}"[:400]
        except MessagingInvalidInputError as exc:
            log.warning("inbound mail refused", extra={"reason": exc.detail})
            return f"550 5.1.7 {exc.detail}"[:400]
        except (psycopg.Error, OSError) as exc:
            log.exception("inbound mail not stored", extra={"error": str(exc)})
            return "451 4.3.0 temporarily unable to store the message; try again later"

    def _store(self, conn: psycopg.Connection[Any], raw: bytes, recipients: list[str]) -> str:
        head = message_from_bytes(raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0])
        if head.get_content_type() == "multipart/report":
            receipt = parse_report(raw)
            matched = service.apply_receipt(conn, receipt)
            if matched:
                tracking.record_receipt(conn, receipt)
            log.info("delivery report", extra={"matched": matched, "status": receipt.status})
            return "250 report accepted"
        parsed = parse_mail(raw)
        got = inbox.receive(
            conn, "email", parsed.message, references=parsed.references,
            recipients=recipients, secret=self.secret,
        )  # fmt: skip
        return f"250 stored in conversation {got.conversation_id}"


def start(
    pool: ConnectionPool,
    *,
    host: str,
    port: int,
    domains: Sequence[str],
    secret: str | None,
) -> Controller:
    """Start the server in a thread; the caller stops the returned controller."""
    handler = InboundHandler(pool, domains, secret)
    controller = Controller(handler, hostname=host, port=port, data_size_limit=MAX_MESSAGE_BYTES)
    controller.start()
    log.info("inbound smtp listening", extra={"host": host, "port": port, "domains": domains})
    return controller


def serve(database_url: str, *, host: str, port: int, domains: Sequence[str]) -> None:
    """Run until interrupted (the CLI command)."""
    cfg = tracking.tracking_config()
    secret = cfg.secret.get_secret_value() if cfg is not None else None
    all_domains = [*domains, *([cfg.reply_domain] if cfg and cfg.reply_domain else [])]
    if not all_domains:
        raise MessagingInvalidInputError(
            f"name a --domain or set reply_domain in {tracking.ENV}: mail for no domain is taken"
        )
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True) as pool:
        controller = start(pool, host=host, port=port, domains=all_domains, secret=secret)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
