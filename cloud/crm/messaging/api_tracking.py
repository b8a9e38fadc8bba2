"""Messaging: the tracking routes. Signed provider webhooks (delivery receipts), the open
pixel, signed click redirects and tracked unsubscribes (the signature is the credential), and
the statistics per message and per campaign for marketers."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from cloud.api.deps import ConnDep, MarketerDep, SettingsDep
from cloud.api.problems import READ_ONLY, problem_responses
from cloud.api.schemas.limits import RowId
from cloud.core.errors import AuthenticationError, CloudError, PermissionDeniedError
from cloud.core.settings import Settings
from cloud.crm.messaging import service, tracking
from cloud.crm.messaging.channels.base import (
    Channel,
    ChannelConfig,
    PermanentChannelError,
    build_channel,
)
from cloud.crm.messaging.config import messaging_config
from cloud.crm.messaging.errors import MessagingInvalidInputError, MessagingNotFoundError
from cloud.crm.messaging.schemas import Unsubscribed

log = logging.getLogger(__name__)
router = APIRouter(tags=["messaging"])
PREFIX = "/v1/messaging"
ChannelName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Token = Annotated[str, Path(min_length=10, max_length=4000)]

MAX_WEBHOOK_BYTES = 1_000_000


class ReceiptOutcome(BaseModel):
    """What a delivery webhook did."""

    matched: bool = Field(description="Whether the receipt named a message of ours.")
    message_id: int | None
    status: str = Field(description="The receipt's status (delivered, hard_bounce, ...).")


class TrackingEvent(BaseModel):
    """One tracking event of a message."""

    id: int
    kind: str = Field(description="delivered, opened, clicked, bounced, unsubscribed, complained.")
    detail: str
    url: str | None
    occurred_at: datetime


class MessageEvents(BaseModel):
    """A message's tracking events and the count of each kind."""

    message_id: int
    counts: dict[str, int]
    events: list[TrackingEvent]


class KindStats(BaseModel):
    """One kind of event over a campaign."""

    unique: int = Field(description="Messages with at least one such event.")
    total: int = Field(description="Events (opens and clicks repeat).")
    rate: float | None = Field(description="unique / sent; null before any message was sent.")


class CampaignStats(BaseModel):
    """A campaign's delivery and engagement."""

    campaign: str
    messages: int
    sent: int
    delivered: KindStats
    opened: KindStats
    clicked: KindStats
    bounced: KindStats
    unsubscribed: KindStats
    complained: KindStats


class BadTrackingLinkError(CloudError):
    """A tracking link whose signature does not match (tampered or forged)."""

    status = 400
    slug = "bad-tracking-link"
    title = "Bad tracking link"


class WebhookUnsignedError(AuthenticationError):
    """A webhook without a (fresh) signature."""

    slug = "webhook-unsigned"
    title = "Webhook signature missing"


class WebhookForgedError(PermissionDeniedError):
    """A webhook whose signature does not match."""

    slug = "webhook-forged"
    title = "Webhook signature does not match"


def _config() -> tracking.TrackingConfig:
    cfg = tracking.tracking_config()
    if cfg is None:
        raise MessagingNotFoundError(f"tracking is not configured ({tracking.ENV})")
    return cfg


_CHANNELS: dict[tuple[int, str], Channel] = {}


def channel_for(settings: Settings, name: str) -> Channel:
    """The adapter of a configured channel (its parse_receipt/parse_inbound), built once."""
    config = messaging_config(settings)
    cfg: ChannelConfig | None = config.channels.get(name)
    routes: dict[str, Any] = getattr(config, "routes", {}) or {}
    if cfg is None and name in routes:
        cfg = routes[name].providers[0].config
    if cfg is None:
        raise MessagingNotFoundError(f"no channel {name!r} is configured")
    key = (id(config), name)
    if key not in _CHANNELS:
        _CHANNELS[key] = build_channel(cfg, settings.database_url)
    return _CHANNELS[key]


async def verified_body(request: Request, channel: str) -> bytes:
    """The raw body of a webhook whose signature is valid for `channel`; counted and refused
    (401 missing or stale, 403 mismatch) otherwise."""
    cfg = _config()
    auth = cfg.webhooks.get(channel)
    if auth is None:
        raise MessagingNotFoundError(f"no webhook is configured for channel {channel!r}")
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise MessagingInvalidInputError(f"webhook body larger than {MAX_WEBHOOK_BYTES} bytes")
    signed = tracking.SignedRequest(
        url=str(request.url),
        body=body,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
    )
    try:
        tracking.check_signature(auth, signed, tolerance_s=cfg.tolerance_s)
    except tracking.SignatureError as exc:
        tracking.WEBHOOKS_REJECTED.labels(channel, exc.reason).inc()
        log.warning(
            "webhook refused",
            extra={"channel": channel, "reason": exc.reason, "path": request.url.path},
        )
        if exc.reason == "mismatch":
            raise WebhookForgedError(exc.detail) from exc
        raise WebhookUnsignedError(exc.detail) from exc
    return body


@router.post(
    PREFIX + "/webhooks/{channel}",
    summary="A provider's signed delivery receipt",
    description="The signature is checked first (see docs/messaging.md, Tracking): missing or"
    " stale is a 401, wrong a 403, neither is processed. The body goes through the channel's"
    " parse_receipt; a body that is not a receipt is a 422. A receipt about a message that is"
    " not ours is answered 200 with `matched: false` (so the provider stops retrying).",
    responses=problem_responses(400, 401, 403, 404),
)
async def delivery_webhook(
    channel: ChannelName, request: Request, conn: ConnDep, settings: SettingsDep
) -> ReceiptOutcome:
    """Verify, parse, suppress on hard bounce/complaint, record the tracking event."""
    body = await verified_body(request, channel)
    adapter = channel_for(settings, channel)
    try:
        receipt = adapter.parse_receipt(body)
    except PermanentChannelError as exc:
        raise MessagingInvalidInputError(f"not a {channel} receipt: {exc.detail}") from exc
    matched = service.apply_receipt(conn, receipt)
    message_id = tracking.record_receipt(conn, receipt) if matched else None
    return ReceiptOutcome(matched=matched, message_id=message_id, status=receipt.status.value)


@router.get(
    PREFIX + "/t/o/{token}.gif",
    summary="Open pixel",
    description="A 1x1 GIF; records message.opened. A tampered token is a 400.",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}}, **problem_responses(400, 404)},
)
def open_pixel(token: Token, conn: ConnDep) -> Response:
    """Record the open, answer the pixel (never cached, so each open is seen)."""
    message = _message(conn, "o", token)
    tracking.record(conn, message, "opened")
    return Response(
        tracking.PIXEL_GIF, media_type="image/gif", headers={"Cache-Control": "no-store"}
    )


@router.get(
    PREFIX + "/t/c/{token}",
    summary="Tracked link",
    description="Records message.clicked and redirects (302) to the signed target. A tampered"
    " token is a 400 and redirects nowhere: the target is only ever the one that was signed.",
    response_class=RedirectResponse,
    status_code=302,
    responses=problem_responses(400, 404),
)
def click(token: Token, conn: ConnDep) -> RedirectResponse:
    """Record the click, then redirect."""
    message = _message(conn, "c", token)
    tracking.record(conn, message, "clicked", url=message["url"])
    return RedirectResponse(message["url"], status_code=302, headers={"Cache-Control": "no-store"})


_CONFIRM_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Unsubscribe</title>
</head><body><form method="post"><p>Stop receiving marketing messages on this channel?</p>
<button type="submit">Unsubscribe</button></form></body></html>"""


@router.get(
    PREFIX + "/t/u/{token}",
    summary="Tracked unsubscribe page",
    description="A page with one button that POSTs to the same URL (link scanners that fetch"
    " links do not unsubscribe anyone). A tampered token is a 400.",
    response_class=HTMLResponse,
    responses=problem_responses(400, 404),
    openapi_extra=READ_ONLY,
)
def unsubscribe_page(token: Token, conn: ConnDep) -> HTMLResponse:
    """Check the token, show the confirmation."""
    _message(conn, "u", token)
    return HTMLResponse(_CONFIRM_PAGE, headers={"Cache-Control": "no-store"})


@router.post(
    PREFIX + "/t/u/{token}",
    summary="Tracked unsubscribe",
    description="Suppresses marketing on the message's channel for its customer and records"
    " message.unsubscribed. A tampered token is a 400.",
    responses=problem_responses(400, 404),
)
def tracked_unsubscribe(token: Token, conn: ConnDep) -> Unsubscribed:
    """Suppress and record."""
    message = _message(conn, "u", token)
    service.unsubscribe(conn, profile_id=message["profile_id"], channel=message["channel"])
    tracking.record(conn, message, "unsubscribed", detail="link", dedup="link")
    return Unsubscribed(channel=message["channel"], unsubscribed=True)


def _message(conn: ConnDep, kind: str, token: str) -> dict[str, Any]:
    cfg = _config()
    try:
        message_id, url = tracking.verify(cfg.secret.get_secret_value(), kind, token)
    except tracking.BadLinkError as exc:
        tracking.LINKS_REJECTED.labels(kind).inc()
        raise BadTrackingLinkError(str(exc)) from exc
    row = tracking.message_facts(conn, message_id)
    if row is None:
        raise MessagingNotFoundError(f"message {message_id} does not exist")
    return {**row, "url": url}


@router.get(
    PREFIX + "/messages/{message_id}/events",
    summary="A message's tracking events",
    description="Delivered, opened, clicked, bounced, unsubscribed and complained, oldest"
    " first, with the count of each.",
    responses=problem_responses(404),
)
def get_message_events(message_id: RowId, conn: ConnDep, _: MarketerDep) -> MessageEvents:
    """Events and counts; 404 for an unknown message."""
    if tracking.message_facts(conn, message_id) is None:
        raise MessagingNotFoundError(f"message {message_id} does not exist")
    rows = tracking.message_events(conn, message_id)
    return MessageEvents(
        message_id=message_id,
        counts=tracking.counts(rows),
        events=[TrackingEvent.model_validate(r) for r in rows],
    )


@router.get(
    PREFIX + "/campaigns/{key}/stats",
    summary="A campaign's delivery and engagement statistics",
    description="Per kind: unique messages, total events and the unique share of the messages"
    " sent (null before any was sent). 404 when no message carries the campaign key.",
    responses=problem_responses(404),
)
def get_campaign_stats(
    key: Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00]+$")],
    conn: ConnDep,
    _: MarketerDep,
) -> CampaignStats:
    """Totals of the campaign."""
    stats = tracking.campaign_stats(conn, key)
    if stats is None:
        raise MessagingNotFoundError(f"no message carries campaign {key!r}")
    return CampaignStats.model_validate(stats)
