"""Signed one-click unsubscribe tokens (RFC 8058): who, on which channel, forged by nobody."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


class BadUnsubscribeTokenError(ValueError):
    """The token is malformed or its signature does not match."""


@dataclass(frozen=True)
class Unsubscribe:
    """What an unsubscribe token stands for."""

    profile_id: int
    channel: str


def _mac(secret: str, payload: bytes) -> str:
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(secret: str, *, profile_id: int, channel: str) -> str:
    """A URL-safe token naming the profile and channel, signed with HMAC-SHA256."""
    payload = f"{profile_id}.{channel}".encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{_mac(secret, payload)}"


def verify(secret: str, token: str) -> Unsubscribe:
    """The profile and channel of a token; BadUnsubscribeTokenError when forged or malformed."""
    try:
        body, mac = token.split(".")
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        pid, channel = payload.decode().split(".")
        profile_id = int(pid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadUnsubscribeTokenError("malformed unsubscribe token") from exc
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise BadUnsubscribeTokenError("unsubscribe token signature does not match")
    return Unsubscribe(profile_id=profile_id, channel=channel)
