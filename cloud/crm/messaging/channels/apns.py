"""Mobile push through Apple Push Notification service: POST /3/device/{token} with a JWT ES256
provider token made from the team's .p8 key (renewed every 50 minutes, as Apple allows one per
20-60 minutes), and APNs' `reason` strings (BadDeviceToken, Unregistered, TooManyRequests, ...).

APNs speaks HTTP/2 only. httpx needs the `h2` package for that, which this project does not ship:
`http2=true` (the default) fails at start-up with a message saying so; `http2=false` is for a
local test server that speaks HTTP/1.1."""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import Field

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
from cloud.crm.messaging.channels.http import (
    HttpChannelConfig,
    HttpTransport,
    json_object,
    retry_after,
)

DEVICE_TOKEN = re.compile(r"^[0-9a-fA-F]{64,200}$")
INVALID_TOKEN = {"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "ExpiredToken"}
TOKEN_ERRORS = {"ExpiredProviderToken", "InvalidProviderToken", "MissingProviderToken"}
TRANSIENT = {"InternalServerError", "ServiceUnavailable", "Shutdown", "IdleTimeout"}
AUTH_HINT = "check team_id, key_id and the .p8 key (and that the key has APNs enabled)"
#: Apple refuses provider tokens older than an hour and renewals more often than every 20 min.
TOKEN_LIFETIME_S = 50 * 60.0
#: A namespace for apns-id: the same outbox message always carries the same apns-id.
APNS_ID_NAMESPACE = uuid.UUID("5b0f0c1e-6d1a-4a53-9a53-1f0d2f6b8c11")


class ApnsConfig(HttpChannelConfig):
    """An Apple developer team's token-based APNs credentials and the app's bundle id."""

    type: Literal["apns"] = "apns"
    team_id: str = Field(pattern=r"^[A-Z0-9]{10}$", description="The 10-character Team ID.")
    key_id: str = Field(pattern=r"^[A-Z0-9]{10}$", description="The 10-character Key ID.")
    private_key_file: str = Field(description="Path of the AuthKey_<key_id>.p8 file.")
    topic: str = Field(min_length=1, description="The app's bundle id (apns-topic).")
    base_url: str = Field(
        default="https://api.push.apple.com",
        description="api.push.apple.com, or api.sandbox.push.apple.com for development builds.",
    )
    http2: bool = Field(default=True, description="HTTP/2 (APNs requires it; needs h2).")


def _h2_available() -> bool:
    try:
        import h2  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


class ApnsPushChannel:
    """Sends alerts; the apns-id APNs echoes is the provider id."""

    name = "push"
    idempotent = False

    def __init__(self, config: ApnsConfig) -> None:
        if config.http2 and not _h2_available():
            raise ValueError(
                "APNs needs HTTP/2 and the h2 package is not installed; install httpx[http2]"
                " (http2=false works only with a local HTTP/1.1 test server)"
            )
        self.config = config
        self._key = jwt.load_private_key(Path(config.private_key_file).read_bytes())
        self.http = HttpTransport(config, http2=config.http2)
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def provider_token(self, *, refresh: bool = False) -> str:
        """The ES256 provider token, renewed every 50 minutes or on `refresh`."""
        with self._lock:
            if self._token is not None and not refresh and self._token[1] > time.monotonic():
                return self._token[0]
            header = {"alg": "ES256", "kid": self.config.key_id}
            claims = {"iss": self.config.team_id, "iat": int(time.time())}
            token = jwt.sign(header, claims, self._key)
            self._token = (token, time.monotonic() + TOKEN_LIFETIME_S)
            return token

    def send(self, message: OutboundMessage) -> str:
        """POST /3/device/{token}; the apns-id, or a typed error."""
        if not DEVICE_TOKEN.match(message.address or ""):
            raise InvalidAddressError(f"not an APNs device token: {message.address!r:.40}")
        apns_id = str(uuid.uuid5(APNS_ID_NAMESPACE, str(message.message_id)))
        alert = {"title": message.subject or "", "body": message.body}
        body = {"aps": {"alert": alert, "sound": "default"}, "mp_message_id": message.message_id}
        url = f"{self.config.base_url.rstrip('/')}/3/device/{message.address}"
        for attempt in range(2):
            headers = {
                "authorization": f"bearer {self.provider_token(refresh=attempt > 0)}",
                "apns-topic": self.config.topic,
                "apns-push-type": "alert",
                "apns-priority": "10",
                "apns-id": apns_id,
            }
            response = self.http.request("POST", url, json=body, headers=headers)
            if response.status_code == 200:
                return str(response.headers.get("apns-id", apns_id))
            reason = str((json_object(response) or {}).get("reason", ""))
            if reason != "ExpiredProviderToken":
                break
        raise _error(response, reason)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """APNs sends no delivery receipts."""
        raise PermanentChannelError("APNs has no delivery receipt webhook")

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """Push is one-way."""
        raise PermanentChannelError("APNs push takes no inbound messages")


def _error(response: httpx.Response, reason: str) -> ChannelError:
    status = response.status_code
    detail = f"apns HTTP {status} {reason or response.reason_phrase}"
    if reason in INVALID_TOKEN or status == 410:
        return InvalidAddressError(detail)
    if reason == "TooManyRequests" or status == 429:
        return RateLimitedError(detail, retry_after_s=retry_after(response, 60.0))
    if reason in TRANSIENT or status >= 500:
        return TransientChannelError(detail)
    if reason in TOKEN_ERRORS or status == 403:
        return PermanentChannelError(f"{detail}; {AUTH_HINT}")
    if reason in ("BadTopic", "TopicDisallowed"):
        return PermanentChannelError(f"{detail}; check topic (the app's bundle id)")
    return PermanentChannelError(detail)


@register("apns", ApnsConfig)
def _apns(config: ApnsConfig, _context: Any) -> ApnsPushChannel:
    return ApnsPushChannel(config)
