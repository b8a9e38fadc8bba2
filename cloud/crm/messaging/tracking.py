"""Tracking: signed delivery webhooks per provider, the open pixel and signed click redirects,
tracked unsubscribes, and what they leave behind: one row per event in crm_msg_events (the
per-message and per-campaign statistics read it) and one `message.<kind>` track event in the
behavioural event stream (source `messaging`).

The webhook signature schemes:

* `hmac` (our generic format): `X-MallPulse-Timestamp: <unix seconds>` and
  `X-MallPulse-Signature: <hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`; a timestamp
  further than `tolerance_s` from now is refused (replays).
* `twilio`: `X-Twilio-Signature`, base64 HMAC-SHA1 of the public URL and the sorted form fields.
* `meta` (WhatsApp Cloud API): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`.
* `wechat`: query `signature=sha1(sorted(token, timestamp, nonce))`, `timestamp`, `nonce`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import re
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import psycopg
from prometheus_client import Counter
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from cloud.core.errors import SettingsError
from cloud.crm.events import repository as events_repo
from cloud.crm.messaging.channels.base import DeliveryReceipt, ReceiptStatus
from cloud.crm.messaging.templates import Rendered

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]

ENV = "MALLPULSE_MESSAGING_TRACKING_FILE"
EVENT_SOURCE = "messaging"
KINDS = ("delivered", "opened", "clicked", "bounced", "unsubscribed", "complained")
Kind = Literal["delivered", "opened", "clicked", "bounced", "unsubscribed", "complained"]

WEBHOOKS_REJECTED = Counter(
    "mallpulse_messaging_webhooks_rejected",
    "Webhooks refused before processing, by channel and reason (missing, stale, mismatch).",
    ["channel", "reason"],
)
TRACKED = Counter("mallpulse_messaging_tracked", "Tracking events recorded, by kind.", ["kind"])
LINKS_REJECTED = Counter(
    "mallpulse_messaging_links_rejected", "Tampered or malformed tracking links, by kind.", ["kind"]
)

#: The 1x1 transparent GIF the open pixel answers with.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class WebhookAuth(BaseModel):
    """How one channel's provider signs its webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scheme: Literal["hmac", "twilio", "meta", "wechat"] = Field(description="Signature scheme.")
    secret: SecretStr = Field(
        description="HMAC key (hmac), auth token (twilio), app secret (meta) or token (wechat)."
    )
    public_url: str | None = Field(
        default=None,
        description="twilio: the URL the provider posts to, as it sees it (behind a proxy the"
        " request URL differs); none: the request URL.",
    )


class TrackingConfig(BaseModel):
    """Link signing, the public base URL of the tracking routes, webhook secrets per channel
    and the reply address of the inbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    secret: SecretStr = Field(description="HMAC key of the open, click and unsubscribe links.")
    base_url: str = Field(
        default="https://mallpulse.example", description="Public base URL of this API."
    )
    tolerance_s: float = Field(
        default=300.0, gt=0, le=86_400, description="Largest webhook clock difference (hmac)."
    )
    webhooks: dict[str, WebhookAuth] = Field(
        default_factory=dict, description="Channel name -> how its webhooks are signed."
    )
    reply_domain: str | None = Field(
        default=None, description="Domain of the reply+<token>@domain inbox address."
    )


def load(path: str | None) -> TrackingConfig | None:
    """The config in the JSON file; None when no file is named."""
    if not path:
        return None
    try:
        return TrackingConfig.model_validate(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:
        detail: Exception = exc
        if isinstance(exc, ValidationError):
            first = exc.errors(include_url=False)[0]
            detail = ValueError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        raise SettingsError(f"{ENV} ({path}): {detail}") from exc


@lru_cache(maxsize=4)
def _cached(path: str, _mtime: float) -> TrackingConfig | None:
    return load(path)


def tracking_config() -> TrackingConfig | None:
    """The config named by MALLPULSE_MESSAGING_TRACKING_FILE, re-read when the file changes."""
    path = os.environ.get(ENV)
    if not path:
        return None
    mtime = Path(path).stat().st_mtime if Path(path).exists() else 0.0
    return _cached(path, mtime)


# --- signed links -------------------------------------------------------------------------


class BadLinkError(ValueError):
    """A tracking token that is malformed or whose signature does not match."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, kind: str, payload: bytes) -> str:
    return _b64(hmac.new(secret.encode(), kind.encode() + b"\0" + payload, "sha256").digest()[:16])


def sign(secret: str, kind: str, message_id: int, url: str = "") -> str:
    """A URL-safe token for `kind` (o, c, u) naming the message (and the click's target)."""
    payload = struct.pack(">Q", message_id) + url.encode()
    return f"{_b64(payload)}.{_mac(secret, kind, payload)}"


def verify(secret: str, kind: str, token: str) -> tuple[int, str]:
    """(message id, url) of a token; BadLinkError when forged, tampered or malformed."""
    try:
        body, mac = token.split(".")
        payload = _unb64(body)
        if len(payload) < 8:
            raise ValueError("short")
        message_id = struct.unpack(">Q", payload[:8])[0]
        url = payload[8:].decode()
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise BadLinkError("malformed tracking link") from exc
    if not hmac.compare_digest(mac, _mac(secret, kind, payload)):
        raise BadLinkError("tracking link signature does not match")
    if kind == "c" and not _safe_target(url):
        raise BadLinkError("tracking link target is not an http(s) URL")
    return message_id, url


def _safe_target(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and "\\" not in url


def click_url(message_id: int, url: str, secret: str, base_url: str) -> str:
    """The signed redirect that records a click on `url` and then sends the reader there."""
    return f"{base_url.rstrip('/')}/v1/messaging/t/c/{sign(secret, 'c', message_id, url)}"


def open_url(message_id: int, secret: str, base_url: str) -> str:
    """The URL of a message's open pixel."""
    return f"{base_url.rstrip('/')}/v1/messaging/t/o/{sign(secret, 'o', message_id)}.gif"


def unsubscribe_url(message_id: int, secret: str, base_url: str) -> str:
    """A tracked unsubscribe link (records message.unsubscribed and suppresses marketing)."""
    return f"{base_url.rstrip('/')}/v1/messaging/t/u/{sign(secret, 'u', message_id)}"


def pixel_tag(message_id: int, secret: str, base_url: str) -> str:
    """The 1x1 <img> that records an open when the reader's client loads images."""
    src = escape(open_url(message_id, secret, base_url), quote=True)
    return f'<img src="{src}" width="1" height="1" alt="" style="display:none" />'


_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def track_links(html: str, message_id: int, secret: str, base_url: str) -> str:
    """Rewrite every http(s) link of an HTML body into a signed click redirect and add the open
    pixel (before </body>, else at the end). mailto:, tel:, anchors and `data-notrack` links are
    left alone. Pure: same input, same output."""

    def rewrite(m: re.Match[str]) -> str:
        target = _unescape_attr(m.group(3).strip())
        tag = m.group(0)
        if not _safe_target(target) or "data-notrack" in tag.lower():
            return tag
        new = escape(click_url(message_id, target, secret, base_url), quote=True)
        return f"{m.group(1)}{m.group(2)}{new}{m.group(2)}"

    out = _HREF.sub(rewrite, html)
    pixel = pixel_tag(message_id, secret, base_url)
    found = list(_BODY_END.finditer(out))
    if found:
        at = found[-1].start()
        return out[:at] + pixel + out[at:]
    return out + pixel


def _unescape_attr(value: str) -> str:
    from html import unescape

    return unescape(value)


# --- webhook signatures -------------------------------------------------------------------


class SignatureError(Exception):
    """A webhook whose signature is missing or stale (401) or does not match (403)."""

    def __init__(self, reason: Literal["missing", "stale", "mismatch"], detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def hmac_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Our generic scheme: hex HMAC-SHA256 over "<timestamp>.<body>"."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def twilio_signature(secret: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by the sorted fields."""
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(secret.encode(), payload.encode(), "sha1").digest()).decode()


def meta_signature(secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 of Meta's webhooks (WhatsApp Cloud API)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's server signature: SHA-1 of the sorted token, timestamp and nonce."""
    joined = "".join(sorted([token, timestamp, nonce])).encode()
    return hashlib.sha1(joined, usedforsecurity=False).hexdigest()  # the provider's scheme


@dataclass(frozen=True)
class SignedRequest:
    """What signature checks read from an HTTP request."""

    url: str
    body: bytes
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str]


def check_signature(
    auth: WebhookAuth, req: SignedRequest, *, tolerance_s: float, now: float | None = None
) -> None:
    """Raise SignatureError unless the request carries a valid signature of `auth`'s scheme."""
    secret = auth.secret.get_secret_value()
    now = time.time() if now is None else now
    if auth.scheme == "hmac":
        ts, sig = req.headers.get("x-mallpulse-timestamp"), req.headers.get("x-mallpulse-signature")
        if not ts or not sig:
            raise SignatureError(
                "missing", "X-MallPulse-Timestamp and X-MallPulse-Signature needed"
            )
        _fresh(ts, now, tolerance_s)
        expected = hmac_signature(secret, ts, req.body)
    elif auth.scheme == "twilio":
        sig = req.headers.get("x-twilio-signature")
        if not sig:
            raise SignatureError("missing", "X-Twilio-Signature needed")
        try:
            params = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise SignatureError("mismatch", "the body is not a UTF-8 form") from exc
        expected = twilio_signature(secret, auth.public_url or req.url, params)
    elif auth.scheme == "meta":
        sig = req.headers.get("x-hub-signature-256")
        if not sig:
            raise SignatureError("missing", "X-Hub-Signature-256 needed")
        expected = meta_signature(secret, req.body)
    else:
        sig, ts, nonce = (req.query.get(k) for k in ("signature", "timestamp", "nonce"))
        if not sig or not ts or not nonce:
            raise SignatureError("missing", "signature, timestamp and nonce query fields needed")
        _fresh(ts, now, tolerance_s)
        expected = wechat_signature(secret, ts, nonce)
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        raise SignatureError("mismatch", "the webhook signature does not match")


def _fresh(ts: str, now: float, tolerance_s: float) -> None:
    try:
        at = float(ts)
    except ValueError as exc:
        raise SignatureError("missing", "the signature timestamp is not a number") from exc
    if not abs(now - at) <= tolerance_s:  # also refuses NaN
        raise SignatureError(
            "stale", f"the signature timestamp is more than {tolerance_s:.0f}s off"
        )


# --- recording ----------------------------------------------------------------------------

RECEIPT_KIND: dict[ReceiptStatus, Kind] = {
    ReceiptStatus.DELIVERED: "delivered",
    ReceiptStatus.HARD_BOUNCE: "bounced",
    ReceiptStatus.SOFT_BOUNCE: "bounced",
    ReceiptStatus.COMPLAINT: "complained",
    ReceiptStatus.READ: "opened",
}


def message_facts(conn: Conn, message_id: int) -> dict[str, Any] | None:
    """The message fields tracking needs (id, profile, channel, campaign)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, profile_id, channel, campaign FROM crm_message_outbox WHERE id = %s",
            (message_id,),
        ).fetchone()


def record(
    conn: Conn,
    message: Mapping[str, Any],
    kind: Kind,
    *,
    detail: str = "",
    url: str | None = None,
    dedup: str | None = None,
    occurred_at: datetime | None = None,
) -> bool:
    """Store one tracking event and its `message.<kind>` track event (caller's transaction);
    False when `dedup` says it was stored before (a retried webhook)."""
    at = occurred_at or datetime.now(UTC)
    row = conn.execute(
        "INSERT INTO crm_msg_events (message_id, kind, detail, url, dedup, occurred_at)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
        (message["id"], kind, detail[:1000], url, dedup, at),
    ).fetchone()
    if row is None:
        return False
    props: dict[str, Any] = {
        "message_id": message["id"],
        "campaign": message.get("campaign"),
        "channel": message["channel"],
    }
    if url is not None:
        props["url"] = url
    if detail:
        props["detail"] = detail[:1000]
    events_repo.copy_events(
        conn,
        [
            events_repo.Event(
                occurred_at=at,
                received_at=datetime.now(UTC),
                source_id=EVENT_SOURCE,
                message_id=f"msg-{message['id']}-{kind}-{row[0]}",
                type="track",
                event=f"message.{kind}",
                profile_id=message["profile_id"],
                properties=props,
            )
        ],
    )
    TRACKED.labels(kind).inc()
    log.info(
        "message tracked", extra={"message_id": message["id"], "kind": kind, "event_id": row[0]}
    )
    return True


def record_receipt(conn: Conn, receipt: DeliveryReceipt) -> int | None:
    """Store a provider receipt's tracking event; the message id, None when not one of ours."""
    with conn.cursor(row_factory=dict_row) as cur:
        msg = cur.execute(
            "SELECT id, profile_id, channel, campaign FROM crm_message_outbox"
            " WHERE provider_id = %s",
            (receipt.provider_id,),
        ).fetchone()
    if msg is None:
        return None
    kind = RECEIPT_KIND[receipt.status]
    detail = receipt.status.value + (f" {receipt.detail}" if receipt.detail else "")
    record(
        conn, msg, kind, detail=detail, dedup=f"{receipt.status.value}:{receipt.detail}"[:300],
        occurred_at=receipt.occurred_at,
    )  # fmt: skip
    return int(msg["id"])


def message_events(conn: Conn, message_id: int) -> list[dict[str, Any]]:
    """A message's tracking events, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, kind, detail, url, occurred_at FROM crm_msg_events WHERE message_id = %s"
            " ORDER BY occurred_at, id",
            (message_id,),
        ).fetchall()


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Events per kind of one message."""
    out = dict.fromkeys(KINDS, 0)
    for r in rows:
        out[r["kind"]] += 1
    return out


def campaign_stats(conn: Conn, campaign: str) -> dict[str, Any] | None:
    """Totals and unique counts of a campaign; None when no message carries the key."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "WITH m AS (SELECT id, status FROM crm_message_outbox WHERE campaign = %s)"
            " SELECT (SELECT count(*) FROM m) AS messages,"
            " (SELECT count(*) FROM m WHERE status = 'sent') AS sent,"
            + ", ".join(
                f" count(DISTINCT e.message_id) FILTER (WHERE e.kind = '{k}') AS unique_{k},"
                f" count(*) FILTER (WHERE e.kind = '{k}') AS total_{k}"
                for k in KINDS
            )
            + " FROM m LEFT JOIN crm_msg_events e ON e.message_id = m.id",
            (campaign,),
        ).fetchone()
    if row is None or row["messages"] == 0:
        return None
    sent = int(row["sent"])
    out: dict[str, Any] = {"campaign": campaign, "messages": row["messages"], "sent": sent}
    for k in KINDS:
        out[k] = {"unique": row[f"unique_{k}"], "total": row[f"total_{k}"]}
        # a share of the messages sent; None (never NaN) before any was sent
        out[k]["rate"] = round(row[f"unique_{k}"] / sent, 6) if sent else None
    return out


def instrument(
    rendered: Rendered, message_id: int, config: TrackingConfig | None = None
) -> Rendered:
    """The dispatcher's hook: an HTML e-mail with tracked links and the open pixel, when
    tracking is configured; anything else unchanged. The plain-text part keeps the real links."""
    cfg = config if config is not None else tracking_config()
    if cfg is None or not rendered.html:
        return rendered
    html = track_links(rendered.html, message_id, cfg.secret.get_secret_value(), cfg.base_url)
    return dataclasses.replace(rendered, html=html)
