"""Web Push subscriptions: the customer tokens the browser presents (HMAC, expiring), the SQL of
crm_msg_push_subscriptions, and the subscription as the web push channel's address."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from cloud.crm.messaging.channels.webpush import Subscription

#: How long a customer token handed to a page stays valid.
TOKEN_TTL_S = 7 * 24 * 3600


class BadPushTokenError(ValueError):
    """The customer token is malformed, forged or expired."""


def sign_token(secret: str, *, profile_id: int, now: float | None = None) -> tuple[str, int]:
    """(token, expiry as epoch seconds) letting a page manage this customer's subscriptions."""
    expires = int(now if now is not None else time.time()) + TOKEN_TTL_S
    payload = f"webpush.{profile_id}.{expires}".encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{_mac(secret, payload)}", expires


def verify_token(secret: str, token: str, *, now: float | None = None) -> int:
    """The profile id of a valid token; BadPushTokenError otherwise."""
    try:
        body, mac = token.split(".")
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        kind, pid, expires = payload.decode().split(".")
        profile_id, until = int(pid), int(expires)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPushTokenError("malformed push token") from exc
    if kind != "webpush" or not hmac.compare_digest(mac, _mac(secret, payload)):
        raise BadPushTokenError("push token signature does not match")
    if until < (now if now is not None else time.time()):
        raise BadPushTokenError("push token expired; ask the shop for a new one")
    return profile_id


def _mac(secret: str, payload: bytes) -> str:
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class PushSubscriptionRow:
    """A stored subscription."""

    id: int
    profile_id: int
    endpoint: str
    p256dh: str
    auth: str
    user_agent: str | None
    created_at: datetime
    updated_at: datetime

    def address(self) -> str:
        """The subscription JSON the web push channel takes as its address."""
        keys = {"p256dh": self.p256dh, "auth": self.auth}
        return json.dumps({"endpoint": self.endpoint, "keys": keys})


_COLUMNS = "id, profile_id, endpoint, p256dh, auth, user_agent, created_at, updated_at"


def profile_exists(conn: psycopg.Connection[Any], profile_id: int) -> bool:
    """Whether the customer exists."""
    row = conn.execute("SELECT 1 FROM crm_profiles WHERE id = %s", (profile_id,)).fetchone()
    return row is not None


def upsert(
    conn: psycopg.Connection[Any], *, profile_id: int, sub: Subscription, user_agent: str | None
) -> PushSubscriptionRow:
    """Store the subscription; an endpoint seen before gets the new keys and owner."""
    with conn.cursor(row_factory=class_row(PushSubscriptionRow)) as cur:
        row = cur.execute(
            "INSERT INTO crm_msg_push_subscriptions"
            " (profile_id, endpoint, p256dh, auth, user_agent) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (endpoint) DO UPDATE SET"
            " profile_id = EXCLUDED.profile_id, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth,"
            " user_agent = EXCLUDED.user_agent, updated_at = now()"
            f" RETURNING {_COLUMNS}",
            (profile_id, sub.endpoint, sub.keys.p256dh, sub.keys.auth, user_agent),
        ).fetchone()
    assert row is not None
    return row


def delete(conn: psycopg.Connection[Any], *, endpoint: str, profile_id: int | None) -> bool:
    """Delete a subscription (only the profile's own when `profile_id` is given)."""
    cur = conn.execute(
        "DELETE FROM crm_msg_push_subscriptions WHERE endpoint = %s"
        " AND (%s::bigint IS NULL OR profile_id = %s)",
        (endpoint, profile_id, profile_id),
    )
    return cur.rowcount > 0


def for_profile(conn: psycopg.Connection[Any], profile_id: int) -> list[PushSubscriptionRow]:
    """A customer's subscriptions, oldest first."""
    with conn.cursor(row_factory=class_row(PushSubscriptionRow)) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM crm_msg_push_subscriptions WHERE profile_id = %s ORDER BY id",
            (profile_id,),
        ).fetchall()
