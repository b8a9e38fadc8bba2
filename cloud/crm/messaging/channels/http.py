"""What the HTTP provider adapters share: one httpx client per adapter with timeouts, transport
failures as TransientChannelError, Retry-After read safely, E.164 numbers, and the fallback
translation of a status code when the provider's body names no known error."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import phonenumbers
from prometheus_client import Counter, Histogram
from pydantic import Field

from cloud.crm.messaging.channels.base import (
    ChannelConfig,
    ChannelError,
    InvalidAddressError,
    PermanentChannelError,
    RateLimitedError,
    TransientChannelError,
)

log = logging.getLogger(__name__)
PROVIDER_REQUESTS = Counter(
    "mallpulse_messaging_provider_requests",
    "Requests to messaging providers by adapter type and outcome (HTTP status class or error).",
    ["provider", "outcome"],
)
PROVIDER_SECONDS = Histogram(
    "mallpulse_messaging_provider_request_seconds",
    "Latency of requests to messaging providers by adapter type.",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

#: Longest wait a provider's Retry-After may impose; a bigger or odd value is clamped.
MAX_RETRY_AFTER_S = 24 * 3600.0
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class HttpChannelConfig(ChannelConfig):
    """Settings every HTTP provider adapter has."""

    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Per-request timeout.")
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Connect timeout.")


def e164(address: str) -> str:
    """The number in E.164 if it is a valid number (libphonenumber's plan); InvalidAddressError."""
    number = re.sub(r"[\s\-().]", "", address or "")
    if not E164.match(number):
        raise InvalidAddressError(f"not an E.164 phone number: {address!r}")
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddressError(f"not a phone number: {address!r} ({exc})") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidAddressError(f"no such number in the numbering plan: {address!r}")
    return number


def retry_after(response: httpx.Response, default: float) -> float:
    """Seconds the provider asks us to wait (Retry-After as seconds or an HTTP date), bounded."""
    raw = response.headers.get("retry-after", "").strip()
    value = default
    if raw:
        try:
            value = float(raw)
        except ValueError:
            try:
                value = (parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                value = default
    if not math.isfinite(value):
        value = default
    return min(max(value, 0.0), MAX_RETRY_AFTER_S)


def obj(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (webhook and error bodies vary)."""
    return value if isinstance(value, dict) else {}


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def by_status(response: httpx.Response, provider: str, detail: str, auth_hint: str) -> ChannelError:
    """The typed error for a refusal whose body names no error this adapter knows."""
    code = response.status_code
    text = f"{provider} HTTP {code}: {detail or response.reason_phrase}"
    if code == 429:
        return RateLimitedError(text, retry_after_s=retry_after(response, 60.0))
    if code >= 500 or code == 408:
        return TransientChannelError(text)
    if code in (401, 403):
        return PermanentChannelError(f"{text}; {auth_hint}")
    if code in (404, 410):
        return InvalidAddressError(text)
    return PermanentChannelError(text)


class HttpTransport:
    """One pooled httpx client; transport failures (timeouts, refused connections) are transient.

    A timeout after the request left is an unknown outcome; the adapters say `idempotent=False`,
    so the dispatcher marks such a message `uncertain` rather than send it twice."""

    def __init__(self, config: HttpChannelConfig, *, http2: bool = False) -> None:
        self.provider = config.type
        self._timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
        self._http2 = http2
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def client(self) -> httpx.Client:
        """The shared client, made on first use."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout, http2=self._http2)
            return self._client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send; TransientChannelError when no answer came back. Counted and timed; logged without
        the URL's query or the body (they may carry tokens and personal data)."""
        start = time.perf_counter()
        outcome = "transport_error"
        try:
            response = self.client().request(method, url, **kwargs)
            outcome = f"{response.status_code // 100}xx"
            return response
        except (UnicodeEncodeError, httpx.InvalidURL) as exc:
            outcome = "not_sent"
            raise PermanentChannelError(
                f"{self.provider}: the request cannot be sent as built ({exc})"
            ) from exc
        except httpx.TimeoutException as exc:
            outcome = "timeout"
            log.warning("provider request timed out",
                        extra={"provider": self.provider, "host": httpx.URL(url).host})  # fmt: skip
            raise TransientChannelError(f"{self.provider}: timed out ({exc!r})") from exc
        except httpx.TransportError as exc:
            log.warning("provider connection failed",
                        extra={"provider": self.provider, "host": httpx.URL(url).host,
                               "error": type(exc).__name__})  # fmt: skip
            raise TransientChannelError(f"{self.provider}: connection failed ({exc!r})") from exc
        finally:
            PROVIDER_REQUESTS.labels(self.provider, outcome).inc()
            PROVIDER_SECONDS.labels(self.provider).observe(time.perf_counter() - start)

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def parse_json_webhook(raw: bytes, provider: str) -> dict[str, Any]:
    """A webhook body that must be a JSON object; PermanentChannelError otherwise."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PermanentChannelError(f"not a {provider} webhook: not JSON") from exc
    if not isinstance(body, dict):
        raise PermanentChannelError(f"not a {provider} webhook: not a JSON object")
    return body
