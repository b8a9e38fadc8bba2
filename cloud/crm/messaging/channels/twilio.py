"""SMS through a Twilio-compatible REST API: POST /2010-04-01/Accounts/{sid}/Messages.json
(form-encoded, HTTP Basic), its JSON error codes, status callbacks as receipts and the incoming
message webhook as inbound. Also speaks to any provider that copies Twilio's API."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
from pydantic import Field, SecretStr, model_validator

from cloud.crm.messaging.channels.base import (
    ChannelError,
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
from cloud.crm.messaging.channels.http import (
    HttpChannelConfig,
    HttpTransport,
    by_status,
    e164,
    json_object,
    retry_after,
)

AUTH_HINT = "check account_sid and auth_token (an API key's sid/secret also works)"
#: Twilio error codes that mean the number cannot receive this message.
INVALID_NUMBER = {21211, 21614, 21612, 21408, 21610, 21217, 21401, 21421}
RATE_LIMITED = {20429, 14107, 30022}
AUTH_ERRORS = {20003, 20005, 20008}
#: Delivery error codes of a failed/undelivered callback that mean the number is dead.
HARD_FAILURES = {30003, 30005, 30006, 30004, 21610, 21614}
_RECEIPT = {"delivered": ReceiptStatus.DELIVERED, "read": ReceiptStatus.READ}


class TwilioConfig(HttpChannelConfig):
    """A Twilio(-compatible) account and the sender the SMS go out from."""

    type: Literal["twilio"] = "twilio"
    base_url: str = Field(default="https://api.twilio.com", description="API base URL.")
    account_sid: str = Field(min_length=2, max_length=64, description="Account SID (AC...).")
    auth_token: SecretStr = Field(description="Auth token (or API key secret).")
    api_key_sid: str | None = Field(
        default=None, description="API key SID to authenticate with instead of the account SID."
    )
    from_number: str | None = Field(default=None, description="Sender number (E.164) or name.")
    messaging_service_sid: str | None = Field(
        default=None, description="Messaging service (MG...) to send through instead of From."
    )
    status_callback_url: str | None = Field(
        default=None, description="Where the provider posts delivery status callbacks."
    )

    @model_validator(mode="after")
    def _sender(self) -> TwilioConfig:
        if not self.from_number and not self.messaging_service_sid:
            raise ValueError("set from_number or messaging_service_sid")
        return self


class TwilioSmsChannel:
    """Sends SMS; the message SID (SM...) is the provider id."""

    name = "sms"
    idempotent = False  # the Messages API has no idempotency key

    def __init__(self, config: TwilioConfig) -> None:
        self.config = config
        self.http = HttpTransport(config)

    def send(self, message: OutboundMessage) -> str:
        """POST the message; its SID, or a typed error."""
        cfg = self.config
        to = e164(message.address)
        if not message.body:
            raise PermanentChannelError("an SMS needs a body")
        form = {"To": to, "Body": message.body}
        if cfg.messaging_service_sid:
            form["MessagingServiceSid"] = cfg.messaging_service_sid
        else:
            form["From"] = cfg.from_number or ""
        if cfg.status_callback_url:
            form["StatusCallback"] = cfg.status_callback_url
        url = f"{cfg.base_url.rstrip('/')}/2010-04-01/Accounts/{cfg.account_sid}/Messages.json"
        user = cfg.api_key_sid or cfg.account_sid
        response = self.http.request(
            "POST", url, data=form, auth=(user, cfg.auth_token.get_secret_value())
        )
        body = json_object(response) or {}
        if response.status_code in (200, 201) and isinstance(body.get("sid"), str):
            return str(body["sid"])
        raise _error(response, body)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """A status callback (form: MessageSid, MessageStatus, ErrorCode)."""
        form = _form(raw)
        sid, status = form.get("MessageSid"), form.get("MessageStatus", "").lower()
        if not sid or not status:
            raise PermanentChannelError("not a status callback: no MessageSid/MessageStatus")
        if status in _RECEIPT:
            return DeliveryReceipt(sid, _RECEIPT[status], detail=status)
        if status in ("failed", "undelivered"):
            code = form.get("ErrorCode", "")
            hard = code.isdigit() and int(code) in HARD_FAILURES
            kind = ReceiptStatus.HARD_BOUNCE if hard else ReceiptStatus.SOFT_BOUNCE
            return DeliveryReceipt(sid, kind, detail=f"{status} {code}".strip())
        raise PermanentChannelError(f"interim status {status!r} is not a delivery outcome")

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """An incoming-message webhook (form: MessageSid, From, Body)."""
        form = _form(raw)
        sid, sender = form.get("MessageSid") or form.get("SmsSid"), form.get("From")
        if not sid or not sender or "Body" not in form:
            raise PermanentChannelError("not an incoming SMS: no MessageSid/From/Body")
        return InboundMessage(address=sender, body=form["Body"], provider_id=sid)


def _error(response: httpx.Response, body: dict[str, Any]) -> ChannelError:
    status, code = response.status_code, body.get("code")
    detail = f"twilio {status} code {code}: {body.get('message', '')}"
    if isinstance(code, int) and not isinstance(code, bool):
        if code in INVALID_NUMBER:
            return InvalidAddressError(detail)
        if code in RATE_LIMITED or status == 429:
            return RateLimitedError(detail, retry_after_s=retry_after(response, 1.0))
        if code in AUTH_ERRORS:
            return PermanentChannelError(f"{detail}; {AUTH_HINT}")
        if status >= 500:
            return TransientChannelError(detail)
        if 400 <= status < 500:
            return PermanentChannelError(detail)
    return by_status(response, "twilio", str(body.get("message", "")), AUTH_HINT)


def _form(raw: bytes) -> dict[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PermanentChannelError("not a form post: not UTF-8") from exc
    return dict(parse_qsl(text, keep_blank_values=True))


def signature(url: str, params: dict[str, str], auth_token: str) -> str:
    """X-Twilio-Signature of a webhook: base64 HMAC-SHA1 of the URL and the sorted parameters."""
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_signature(url: str, raw: bytes, header: str, auth_token: str) -> bool:
    """Whether a form webhook posted to `url` carries a valid X-Twilio-Signature."""
    try:
        params = _form(raw)
    except ChannelError:
        return False
    return hmac.compare_digest(signature(url, params, auth_token), header)


@register("twilio", TwilioConfig)
def _twilio(config: TwilioConfig, _context: Any) -> TwilioSmsChannel:
    return TwilioSmsChannel(config)
