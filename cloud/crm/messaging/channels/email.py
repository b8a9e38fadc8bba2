"""E-mail over SMTP: STARTTLS and AUTH, DKIM signing (dkimpy), RFC 8058 one-click unsubscribe;
delivery status notifications (RFC 3464) and feedback reports (RFC 5965) as receipts."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
from email import message_from_bytes, policy
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any, Literal

import dkim
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cloud.crm.messaging import unsubscribe
from cloud.crm.messaging.channels.base import (
    ChannelConfig,
    DeliveryReceipt,
    InboundMessage,
    InvalidAddressError,
    OutboundMessage,
    PermanentChannelError,
    RateLimitedError,
    ReceiptStatus,
    TransientChannelError,
    register,
)

#: Headers DKIM signs; RFC 8058 requires List-Unsubscribe(-Post) to be covered by the signature.
SIGNED_HEADERS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-unsubscribe", b"list-unsubscribe-post",
)  # fmt: skip


_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
_WIRE = policy.compat32.clone(linesep="\r\n", max_line_length=998)


class DkimConfig(BaseModel):
    """DKIM signing key and identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    domain: str = Field(description="The signing domain (d=).")
    selector: str = Field(description="The selector (s=); the key is at <s>._domainkey.<d>.")
    private_key_file: str = Field(description="PEM file of the RSA or Ed25519 private key.")


class SmtpConfig(ChannelConfig):
    """An SMTP relay and the identity the mail goes out under."""

    type: Literal["smtp"] = "smtp"
    host: str = Field(description="SMTP server host.")
    port: int = Field(default=587, ge=1, le=65535, description="SMTP server port.")
    starttls: bool = Field(default=True, description="Upgrade with STARTTLS before AUTH.")
    ca_file: str | None = Field(default=None, description="CA bundle to verify the server.")
    username: str | None = Field(default=None, description="AUTH user (none: no AUTH).")
    password: SecretStr | None = Field(default=None, description="AUTH password.")
    from_address: str = Field(description="The From address.")
    timeout_s: float = Field(default=30.0, gt=0, description="Socket timeout.")
    dkim: DkimConfig | None = Field(default=None, description="DKIM signing; none: unsigned.")
    unsubscribe_url: str | None = Field(
        default=None, description="Base URL of the one-click unsubscribe endpoint (HTTPS)."
    )
    unsubscribe_secret: SecretStr | None = Field(
        default=None, description="HMAC key of the unsubscribe tokens."
    )


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


class SmtpEmailChannel:
    """Sends over one reused SMTP connection per process (reconnecting when it drops)."""

    name = "email"
    idempotent = False

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()
        self._dkim_key = (
            Path(config.dkim.private_key_file).read_bytes() if config.dkim is not None else None
        )

    def build(self, message: OutboundMessage) -> bytes:
        """The message as it goes on the wire: MIME, headers, DKIM signature."""
        # compat32 MIME classes: five times faster to build and serialise than EmailMessage,
        # which matters at campaign volume; bodies in quoted-printable UTF-8
        cfg = self.config
        text = MIMEText(message.body, "plain", _UTF8_QP)  # type: ignore[arg-type]  # typeshed: str only
        msg: Message = text
        if message.html:
            msg = MIMEMultipart("alternative")
            msg.attach(text)
            msg.attach(MIMEText(message.html, "html", _UTF8_QP))  # type: ignore[arg-type]
        subject = message.subject or ""
        msg["From"] = cfg.from_address
        msg["To"] = message.address
        msg["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = message_id_for(message.message_id, _domain(cfg.from_address))
        if cfg.unsubscribe_url and cfg.unsubscribe_secret and message.profile_id is not None:
            token = unsubscribe.sign(
                cfg.unsubscribe_secret.get_secret_value(),
                profile_id=message.profile_id,
                channel="email",
            )
            msg["List-Unsubscribe"] = f"<{cfg.unsubscribe_url.rstrip('/')}/{token}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        for key, value in message.headers.items():
            msg[key] = value
        raw = msg.as_bytes(policy=_WIRE)
        if cfg.dkim is not None and self._dkim_key is not None:
            present = {k.lower().encode() for k in msg}
            signature = dkim.sign(
                raw,
                cfg.dkim.selector.encode(),
                cfg.dkim.domain.encode(),
                self._dkim_key,
                include_headers=[h for h in SIGNED_HEADERS if h in present],
            )
            raw = signature + raw
        return raw

    def send(self, message: OutboundMessage) -> str:
        """Deliver to the relay; the Message-ID is the provider id."""
        try:
            validate_email(message.address, check_deliverability=False)
        except EmailNotValidError as exc:
            raise InvalidAddressError(f"invalid e-mail address: {exc}") from exc
        raw = self.build(message)
        with self._lock:
            try:
                smtp = self._connection()
                smtp.sendmail(parseaddr(self.config.from_address)[1], [message.address], raw)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                raise _by_code(code, text, invalid_address=True) from exc
            except smtplib.SMTPAuthenticationError as exc:
                # The relay's credentials, not the message, are wrong: retry once they are fixed.
                self._drop()
                raise TransientChannelError(f"SMTP AUTH refused: {exc.smtp_code}") from exc
            except smtplib.SMTPResponseException as exc:
                self._drop()
                raise _by_code(exc.smtp_code, exc.smtp_error) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                raise TransientChannelError(f"SMTP connection failed: {exc}") from exc
        return message_id_for(message.message_id, _domain(self.config.from_address))

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        cfg = self.config
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        try:
            smtp.ehlo()
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=cfg.ca_file))
                smtp.ehlo()
            if cfg.username:
                secret = cfg.password.get_secret_value() if cfg.password else ""
                smtp.login(cfg.username, secret)
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        """Say QUIT and close the connection."""
        with self._lock:
            if self._smtp is not None:
                with contextlib.suppress(OSError, smtplib.SMTPException):
                    self._smtp.quit()
                self._smtp = None

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """A DSN (multipart/report; report-type=delivery-status) or an ARF complaint."""
        return parse_report(raw)

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """A customer's e-mail: sender, text, Message-ID and In-Reply-To for threading."""
        msg = message_from_bytes(raw, policy=policy.default)
        sender = parseaddr(str(msg.get("From", "")))[1]
        if not sender or not msg.get("Message-ID"):
            raise PermanentChannelError("not an e-mail: no From address or Message-ID")
        part = msg.get_body(preferencelist=("plain", "html")) if msg.is_multipart() else msg
        body = part.get_content() if isinstance(part, EmailMessage) else ""
        return InboundMessage(
            address=sender,
            body=str(body),
            provider_id=str(msg["Message-ID"]).strip(),
            in_reply_to=str(msg["In-Reply-To"]).strip() if msg.get("In-Reply-To") else None,
            subject=str(msg.get("Subject", "")) or None,
        )


def message_id_for(message_id: int, domain: str) -> str:
    """The Message-ID of an outbox message: stable, so receipts and replies find it."""
    return f"<mp-{message_id}@{domain}>"


def _by_code(code: int, text: bytes | str, *, invalid_address: bool = False) -> Exception:
    detail = f"SMTP {code}: {text.decode(errors='replace') if isinstance(text, bytes) else text}"
    if code == 421 or code == 452:
        return RateLimitedError(detail, retry_after_s=60.0)
    if 400 <= code < 500:
        return TransientChannelError(detail)
    if invalid_address and code in (550, 551, 553):
        return InvalidAddressError(detail)
    return PermanentChannelError(detail)


def _report_fields(part: Message) -> dict[str, str]:
    fields: dict[str, str] = {}
    payload: Any = part.get_payload()
    blocks = payload if isinstance(payload, list) else []
    for block in blocks:
        for key, value in block.items():
            fields.setdefault(key.lower(), str(value))
    return fields


def parse_report(raw: bytes) -> DeliveryReceipt:
    """Read a delivery status notification or an abuse feedback report about one of ours."""
    msg = message_from_bytes(raw, policy=policy.compat32)
    if msg.get_content_type() != "multipart/report":
        raise PermanentChannelError("not a delivery report (multipart/report expected)")
    kind = (msg.get_param("report-type") or "").__str__().lower()
    fields: dict[str, str] = {}
    original: str | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/feedback-report"):
            fields.update(_report_fields(part))
        elif ctype in ("text/rfc822-headers", "message/rfc822") and original is None:
            original = _original_message_id(part)
    if original is None:
        raise PermanentChannelError("the report names no original Message-ID")
    if kind == "feedback-report":
        return DeliveryReceipt(
            original, ReceiptStatus.COMPLAINT, detail=fields.get("feedback-type", "")
        )
    action = fields.get("action", "").lower()
    status = fields.get("status", "")
    if action == "delivered":
        return DeliveryReceipt(original, ReceiptStatus.DELIVERED, detail=status)
    if action == "failed" and status.startswith("5"):
        return DeliveryReceipt(original, ReceiptStatus.HARD_BOUNCE, detail=status)
    if action in ("failed", "delayed"):
        return DeliveryReceipt(original, ReceiptStatus.SOFT_BOUNCE, detail=status)
    raise PermanentChannelError(f"unknown DSN action {action!r}")


def _original_message_id(part: Message) -> str | None:
    payload: Any = part.get_payload()
    if isinstance(payload, list) and payload:
        inner = payload[0]
        return str(inner["Message-ID"]).strip() if inner["Message-ID"] else None
    text = payload if isinstance(payload, str) else ""
    headers = message_from_bytes(text.encode(), policy=policy.compat32)
    return str(headers["Message-ID"]).strip() if headers["Message-ID"] else None


@register("smtp", SmtpConfig)
def _smtp(config: SmtpConfig, _context: Any) -> SmtpEmailChannel:
    return SmtpEmailChannel(config)
