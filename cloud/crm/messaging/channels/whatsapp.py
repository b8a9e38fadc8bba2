"""WhatsApp through Meta's Cloud API: POST /{version}/{phone-number-id}/messages with a `text` or
a `template` message, its error objects (131026 undeliverable, 132001 template missing or not
approved, 130429 rate limit, ...), and the webhook's `statuses` (receipts) and `messages` (inbound).

A template message is asked for with the OutboundMessage headers `whatsapp-template` (name),
`whatsapp-language` (code, default the config's) and `whatsapp-params` (a JSON array of strings:
the body's {{1}}, {{2}}, ...); without them the body goes out as a free-form text message, which
WhatsApp accepts only within 24 hours of the customer's last message."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from cloud.crm.messaging.channels.base import (
    ChannelError,
    DeliveryReceipt,
    InboundMessage,
    InvalidAddressError,
    OutboundMessage,
    PermanentChannelError,
    RateLimitedError,
    ReceiptStatus,
    TemplateNotApprovedError,
    TransientChannelError,
    register,
)
from cloud.crm.messaging.channels.http import (
    HttpChannelConfig,
    HttpTransport,
    by_status,
    e164,
    json_object,
    obj,
    parse_json_webhook,
    retry_after,
)

AUTH_HINT = "renew access_token (a system user token with whatsapp_business_messaging)"
INVALID_RECIPIENT = {131026, 131030, 131021}
TEMPLATE_ERRORS = {132001, 132007, 132015, 132016, 132068, 132069}
RATE_LIMITED = {130429, 131048, 131056, 80007, 4}
AUTH_ERRORS = {190, 0, 10, 200, 3}
TRANSIENT = {131000, 131016, 1, 2}
_STATUS = {"delivered": ReceiptStatus.DELIVERED, "read": ReceiptStatus.READ}


class WhatsAppConfig(HttpChannelConfig):
    """A WhatsApp Business phone number on the Cloud API."""

    type: Literal["whatsapp"] = "whatsapp"
    base_url: str = Field(default="https://graph.facebook.com", description="Graph API base.")
    api_version: str = Field(
        default="v21.0", pattern=r"^v[0-9]+\.[0-9]+$", description="Graph API version."
    )
    phone_number_id: str = Field(
        pattern=r"^[0-9]{1,32}$", description="The sender's phone number id."
    )
    access_token: SecretStr = Field(description="Bearer token of a system user.")
    app_secret: SecretStr | None = Field(
        default=None, description="App secret that signs webhooks (X-Hub-Signature-256)."
    )
    default_language: str = Field(default="en", description="Template language when unset.")


class WhatsAppChannel:
    """Sends text or template messages; the wamid is the provider id."""

    name = "whatsapp"
    idempotent = False

    def __init__(self, config: WhatsAppConfig) -> None:
        self.config = config
        self.http = HttpTransport(config)

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The JSON body the Cloud API expects for this message."""
        to = e164(message.address).lstrip("+")
        base: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
        }
        name = message.headers.get("whatsapp-template")
        if not name:
            if not message.body:
                raise PermanentChannelError("a WhatsApp text message needs a body")
            return base | {"type": "text", "text": {"preview_url": False, "body": message.body}}
        template: dict[str, Any] = {
            "name": name,
            "language": {
                "code": message.headers.get("whatsapp-language", self.config.default_language)
            },
        }
        params = _params(message.headers.get("whatsapp-params"))
        if params:
            parameters = [{"type": "text", "text": p} for p in params]
            template["components"] = [{"type": "body", "parameters": parameters}]
        return base | {"type": "template", "template": template}

    def send(self, message: OutboundMessage) -> str:
        """POST to /messages; the wamid, or a typed error."""
        cfg = self.config
        url = f"{cfg.base_url.rstrip('/')}/{cfg.api_version}/{cfg.phone_number_id}/messages"
        response = self.http.request(
            "POST",
            url,
            json=self.payload(message),
            headers={"Authorization": f"Bearer {cfg.access_token.get_secret_value()}"},
        )
        body = json_object(response) or {}
        messages = body.get("messages")
        if response.status_code == 200 and isinstance(messages, list) and messages:
            first = messages[0]
            if isinstance(first, dict) and isinstance(first.get("id"), str):
                return str(first["id"])
        raise _error(response, body)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """The first entry of a webhook's `statuses` (delivered, read, failed)."""
        for value in _values(raw):
            for status in _list(value.get("statuses")):
                if isinstance(status, dict) and isinstance(status.get("id"), str):
                    return _receipt(status)
        raise PermanentChannelError("not a WhatsApp status webhook: no statuses")

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """The first entry of a webhook's `messages` (text, or the caption/type of media)."""
        for value in _values(raw):
            for msg in _list(value.get("messages")):
                if not isinstance(msg, dict) or not msg.get("id") or not msg.get("from"):
                    continue
                kind = str(msg.get("type", ""))
                part = obj(msg.get(kind))
                text = part.get("body") or part.get("caption") or f"[{kind}]"
                context = obj(msg.get("context"))
                return InboundMessage(
                    address="+" + str(msg["from"]).lstrip("+"),
                    body=str(text),
                    provider_id=str(msg["id"]),
                    in_reply_to=str(context["id"]) if context.get("id") else None,
                )
        raise PermanentChannelError("not a WhatsApp message webhook: no messages")


def _params(raw: str | None) -> list[str]:
    if not raw:
        return []
    try:
        params = json.loads(raw)
    except ValueError as exc:
        raise PermanentChannelError("whatsapp-params must be a JSON array of strings") from exc
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise PermanentChannelError("whatsapp-params must be a JSON array of strings")
    return params


def _error(response: httpx.Response, body: dict[str, Any]) -> ChannelError:
    error = obj(body.get("error"))
    if not error:
        return by_status(response, "whatsapp", "", AUTH_HINT)
    code = error.get("code") if isinstance(error.get("code"), int) else None
    data = obj(error.get("error_data"))
    detail = f"whatsapp {code}: {error.get('message', '')} {data.get('details', '')}".strip()
    if code in INVALID_RECIPIENT:
        return InvalidAddressError(detail)
    if code in TEMPLATE_ERRORS:
        return TemplateNotApprovedError(detail)
    if code in RATE_LIMITED or response.status_code == 429:
        return RateLimitedError(detail, retry_after_s=retry_after(response, 60.0))
    if code in AUTH_ERRORS or response.status_code == 401:
        return PermanentChannelError(f"{detail}; {AUTH_HINT}")
    if code == 131047:
        return PermanentChannelError(f"{detail}; outside the 24 h window send a template")
    if code in TRANSIENT or response.status_code >= 500:
        return TransientChannelError(detail)
    return PermanentChannelError(detail)


def _values(raw: bytes) -> list[dict[str, Any]]:
    body = parse_json_webhook(raw, "WhatsApp")
    out: list[dict[str, Any]] = []
    for entry in _list(body.get("entry")):
        for change in _list(obj(entry).get("changes")):
            value = obj(change).get("value")
            if isinstance(value, dict):
                out.append(value)
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _receipt(status: dict[str, Any]) -> DeliveryReceipt:
    kind = str(status.get("status", ""))
    pid = str(status["id"])
    if kind in _STATUS:
        return DeliveryReceipt(pid, _STATUS[kind], detail=kind)
    if kind == "failed":
        errors = _list(status.get("errors")) or [{}]
        first = obj(errors[0])
        code = first.get("code")
        hard = isinstance(code, int) and code in INVALID_RECIPIENT
        return DeliveryReceipt(
            pid,
            ReceiptStatus.HARD_BOUNCE if hard else ReceiptStatus.SOFT_BOUNCE,
            detail=f"failed {code}: {first.get('title', '')}",
        )
    raise PermanentChannelError(f"interim status {kind!r} is not a delivery outcome")


def verify_signature(raw: bytes, header: str, app_secret: str) -> bool:
    """Whether X-Hub-Signature-256 (`sha256=<hex HMAC of the body>`) is valid."""
    expected = "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


@register("whatsapp", WhatsAppConfig)
def _whatsapp(config: WhatsAppConfig, _context: Any) -> WhatsAppChannel:
    return WhatsAppChannel(config)
