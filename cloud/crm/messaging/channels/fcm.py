"""Mobile push through Firebase Cloud Messaging HTTP v1: POST /v1/projects/{p}/messages:send with
an OAuth2 bearer obtained from a service-account JWT assertion (RS256, signed with
`cryptography`) at the token endpoint; FCM's error codes (UNREGISTERED, QUOTA_EXCEEDED, ...).
The address is the app instance's registration token. FCM has no delivery receipts or inbound."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
    by_status,
    json_object,
    log,
    obj,
    retry_after,
)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
AUTH_HINT = "check the service account key and that it has the Firebase Messaging role"
INVALID_TOKEN = {"UNREGISTERED", "SENDER_ID_MISMATCH"}
TRANSIENT = {"UNAVAILABLE", "INTERNAL"}


class ServiceAccount(BaseModel):
    """The fields of a Google service-account key file that signing needs."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    client_email: str
    private_key: SecretStr
    private_key_id: str = ""
    token_uri: str = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)


class FcmConfig(HttpChannelConfig):
    """A Firebase project and the service account that sends for it."""

    type: Literal["fcm"] = "fcm"
    project_id: str = Field(pattern=r"^[a-z0-9-]{2,64}$", description="Firebase project id.")
    service_account_file: str = Field(description="Path of the service-account JSON key.")
    base_url: str = Field(default="https://fcm.googleapis.com", description="FCM API base URL.")
    token_url: str | None = Field(
        default=None, description="OAuth2 token endpoint (default: the key file's token_uri)."
    )


class FcmPushChannel:
    """Sends notifications; FCM's message name (projects/p/messages/...) is the provider id."""

    name = "push"
    idempotent = False

    def __init__(self, config: FcmConfig) -> None:
        self.config = config
        raw = json.loads(Path(config.service_account_file).read_text())
        self.account = ServiceAccount.model_validate(raw)
        self._key = jwt.load_private_key(self.account.private_key.get_secret_value().encode())
        self.token_url = config.token_url or self.account.token_uri
        self.http = HttpTransport(config)
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def access_token(self, *, refresh: bool = False) -> str:
        """An OAuth2 access token from a signed assertion, cached until shortly before expiry."""
        with self._lock:
            now = time.time()
            if self._token is not None and not refresh and self._token[1] > time.monotonic():
                return self._token[0]
            header = {"alg": "RS256", "typ": "JWT", "kid": self.account.private_key_id}
            claims = {
                "iss": self.account.client_email,
                "scope": SCOPE,
                "aud": self.token_url,
                "iat": int(now),
                "exp": int(now) + 3600,
            }
            response = self.http.request(
                "POST",
                self.token_url,
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": jwt.sign(header, claims, self._key),
                },
            )
            body = json_object(response) or {}
            token, ttl = body.get("access_token"), body.get("expires_in", 3600)
            usable = isinstance(token, str) and token.isascii() and token.isprintable()
            if response.status_code != 200 or not usable or not isinstance(token, str):
                if response.status_code >= 500:
                    raise TransientChannelError(f"fcm token endpoint HTTP {response.status_code}")
                raise PermanentChannelError(
                    f"fcm token endpoint refused the assertion: {body.get('error', '')}"
                    f" {body.get('error_description', '')}; {AUTH_HINT}"
                )
            ttl_s = float(ttl) if isinstance(ttl, int | float) else 3600.0
            self._token = (token, time.monotonic() + max(ttl_s - 300.0, 30.0))
            log.info(
                "fcm access token fetched", extra={"provider": self.config.type, "refresh": refresh}
            )
            return token

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The v1 `message` body: a notification plus our outbox id as data."""
        if not message.address or len(message.address) > 4096 or " " in message.address:
            raise InvalidAddressError(f"not an FCM registration token: {message.address!r:.40}")
        notification = {"title": message.subject or "", "body": message.body}
        data = {"mp_message_id": str(message.message_id)}
        return {"message": {"token": message.address, "notification": notification, "data": data}}

    def send(self, message: OutboundMessage) -> str:
        """POST messages:send (refreshing the bearer once on 401); the message name."""
        body = self.payload(message)
        cfg = self.config
        url = f"{cfg.base_url.rstrip('/')}/v1/projects/{cfg.project_id}/messages:send"
        for attempt in range(2):
            token = self.access_token(refresh=attempt > 0)
            response = self.http.request(
                "POST", url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            answer = json_object(response) or {}
            if response.status_code == 200 and isinstance(answer.get("name"), str):
                return str(answer["name"])
            if response.status_code != 401:
                break
        raise _error(response, answer)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """FCM sends no delivery receipts to the server (use BigQuery export for them)."""
        raise PermanentChannelError("FCM has no delivery receipt webhook")

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """Push is one-way."""
        raise PermanentChannelError("FCM push takes no inbound messages")


def _error(response: httpx.Response, body: dict[str, Any]) -> ChannelError:
    error = obj(body.get("error"))
    details = error.get("details")
    codes = [
        str(d.get("errorCode"))
        for d in (details if isinstance(details, list) else [])
        if isinstance(d, dict) and d.get("errorCode")
    ]
    fcm = codes[0] if codes else str(error.get("status", ""))
    detail = f"fcm HTTP {response.status_code} {fcm}: {error.get('message', '')}"
    if fcm in INVALID_TOKEN:
        return InvalidAddressError(detail)
    if fcm == "INVALID_ARGUMENT" and "token" in str(error.get("message", "")).lower():
        return InvalidAddressError(detail)
    if fcm == "QUOTA_EXCEEDED" or response.status_code == 429:
        return RateLimitedError(detail, retry_after_s=retry_after(response, 60.0))
    if fcm in TRANSIENT or response.status_code >= 500:
        return TransientChannelError(detail)
    if fcm == "THIRD_PARTY_AUTH_ERROR":
        return PermanentChannelError(f"{detail}; check the APNs/web credentials in Firebase")
    if response.status_code in (401, 403):
        return PermanentChannelError(f"{detail}; {AUTH_HINT}")
    if not error:
        return by_status(response, "fcm", "", AUTH_HINT)
    return PermanentChannelError(detail)


@register("fcm", FcmConfig)
def _fcm(config: FcmConfig, _context: Any) -> FcmPushChannel:
    return FcmPushChannel(config)
