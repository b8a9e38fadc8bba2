"""Web Push with VAPID: the payload encrypted for the browser's subscription keys (RFC 8291,
aes128gcm, by pywebpush/http_ece), a VAPID token (RFC 8292, by py_vapid) and the POST to the
subscription's endpoint (RFC 8030) with httpx; 404/410 mean the subscription is gone.

The address is the subscription as the browser's `PushSubscription.toJSON()` gives it:
`{"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}`."""

from __future__ import annotations

import json
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from py_vapid import Vapid02
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pywebpush import WebPusher, WebPushException

from cloud.crm.messaging.channels import jwt
from cloud.crm.messaging.channels.base import (
    ChannelError,
    DeliveryReceipt,
    InboundMessage,
    InvalidAddressError,
    OutboundMessage,
    PermanentChannelError,
    RateLimitedError,
    TransientChannelError,
    register,
)
from cloud.crm.messaging.channels.http import HttpChannelConfig, HttpTransport, retry_after

B64URL = r"^[A-Za-z0-9_-]+={0,2}$"
AUTH_HINT = "the subscription was made with another VAPID public key; the browser must resubscribe"


class SubscriptionKeys(BaseModel):
    """The browser's ECDH public key and auth secret (base64url)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    p256dh: str = Field(min_length=80, max_length=100, pattern=B64URL, description="P-256 key.")
    auth: str = Field(min_length=16, max_length=32, pattern=B64URL, description="Auth secret.")


class Subscription(BaseModel):
    """A browser's push subscription (PushSubscription.toJSON())."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    endpoint: str = Field(min_length=10, max_length=2048, description="Push service URL.")
    keys: SubscriptionKeys = Field(description="Encryption keys.")
    expirationTime: float | None = Field(  # noqa: N815 (the browser's spelling)
        default=None, allow_inf_nan=False, description="When the browser lets it lapse (ms)."
    )

    def validate_endpoint(self, *, allow_http: bool) -> None:
        """ValueError unless the endpoint is an https URL (http only when allowed, for tests)."""
        parts = urlsplit(self.endpoint)
        schemes = ("https", "http") if allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"endpoint must be an {' or '.join(schemes)} URL")


def parse_subscription(address: str, *, allow_http: bool) -> Subscription:
    """The subscription an address holds; InvalidAddressError saying what is wrong."""
    try:
        sub = Subscription.model_validate_json(address)
        sub.validate_endpoint(allow_http=allow_http)
    except (ValidationError, ValueError) as exc:
        raise InvalidAddressError(f"not a push subscription: {exc}") from exc
    return sub


class WebPushConfig(HttpChannelConfig):
    """The VAPID key pair and contact, and how long a push service keeps an undelivered message."""

    type: Literal["webpush"] = "webpush"
    vapid_private_key: SecretStr = Field(
        description="VAPID private key: base64url of the raw 32-byte P-256 scalar, or of its DER."
    )
    subject: str = Field(
        pattern=r"^(mailto:|https://)", description="VAPID contact (mailto: or https: URL)."
    )
    ttl_s: int = Field(default=86400, ge=0, le=2419200, description="TTL header (seconds).")
    urgency: Literal["very-low", "low", "normal", "high"] = Field(
        default="normal", description="Urgency header (RFC 8030 5.3)."
    )
    allow_http_endpoints: bool = Field(
        default=False, description="Accept http:// endpoints (local test push services only)."
    )
    subscription_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key of the customer tokens the subscription API accepts (api_push).",
    )


class WebPushChannel:
    """Encrypts and posts to the browser's push service; its Location (or our id) is the id."""

    name = "webpush"
    idempotent = False

    def __init__(self, config: WebPushConfig) -> None:
        self.config = config
        try:
            self.vapid = Vapid02.from_string(config.vapid_private_key.get_secret_value())
        except Exception as exc:  # py_vapid raises bare errors for a malformed key
            raise ValueError(f"vapid_private_key is not a P-256 private key: {exc}") from exc
        self.http = HttpTransport(config)

    @property
    def public_key(self) -> str:
        """The VAPID public key the page passes to PushManager.subscribe (base64url)."""
        return vapid_public_key(self.vapid)

    def request(self, message: OutboundMessage) -> tuple[str, bytes, dict[str, str]]:
        """(endpoint, encrypted body, headers) for this message."""
        sub = parse_subscription(message.address, allow_http=self.config.allow_http_endpoints)
        payload = json.dumps(
            {"title": message.subject or "", "body": message.body, "id": message.message_id},
            ensure_ascii=False,
        ).encode()
        try:
            body = WebPusher(sub.model_dump()).encode(payload, "aes128gcm")["body"]
        except (WebPushException, ValueError) as exc:
            raise InvalidAddressError(f"cannot encrypt for this subscription: {exc}") from exc
        parts = urlsplit(sub.endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(time.time()) + 12 * 3600,
            "sub": self.config.subject,
        }
        headers = {str(k): str(v) for k, v in self.vapid.sign(claims).items()}
        headers |= {
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.config.ttl_s),
            "Urgency": self.config.urgency,
        }
        return sub.endpoint, bytes(body), headers

    def send(self, message: OutboundMessage) -> str:
        """POST to the push service; 201 -> its Location header (or `webpush-<outbox id>`)."""
        endpoint, body, headers = self.request(message)
        response = self.http.request("POST", endpoint, content=body, headers=headers)
        if response.status_code in (200, 201, 202):
            return response.headers.get("location") or f"webpush-{message.message_id}"
        raise _error(response)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """Push services send no receipts to the application server."""
        raise PermanentChannelError("Web Push has no delivery receipts")

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """Push is one-way."""
        raise PermanentChannelError("Web Push takes no inbound messages")


def vapid_public_key(vapid: Any) -> str:
    """The uncompressed P-256 public point of a py_vapid key, base64url."""
    from cryptography.hazmat.primitives import serialization

    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return jwt.b64url(raw)


def _error(response: httpx.Response) -> ChannelError:
    status = response.status_code
    detail = f"webpush HTTP {status}: {response.text[:200]}"
    if status in (404, 410):
        return InvalidAddressError(f"{detail} (the subscription is gone; delete it)")
    if status == 429:
        return RateLimitedError(detail, retry_after_s=retry_after(response, 60.0))
    if status >= 500:
        return TransientChannelError(detail)
    if status in (401, 403):
        return PermanentChannelError(f"{detail}; {AUTH_HINT}")
    if status == 413:
        return PermanentChannelError(f"{detail}; the payload is over 4 KiB")
    return PermanentChannelError(detail)


@register("webpush", WebPushConfig)
def _webpush(config: WebPushConfig, _context: Any) -> WebPushChannel:
    return WebPushChannel(config)
