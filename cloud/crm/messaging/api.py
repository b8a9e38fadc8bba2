"""The messaging API for marketers: templates (CRUD, preview), send (Idempotency-Key), message
status, the in-app inbox; and the RFC 8058 one-click unsubscribe endpoint (the token is the
credential)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.deps import ConnDep, MarketerDep, SettingsDep
from cloud.api.problems import problem_responses
from cloud.api.routes.customers_deps import IdempotencyKeyDep
from cloud.api.schemas.limits import PG_BIGINT_MAX, RowId
from cloud.crm.messaging import campaigns, selection, service, unsubscribe
from cloud.crm.messaging import repository as repo
from cloud.crm.messaging.config import messaging_config
from cloud.crm.messaging.dispatch import find_template
from cloud.crm.messaging.errors import MessagingInvalidInputError, MessagingNotFoundError
from cloud.crm.messaging.schemas import (
    ArmPosterior,
    ChannelPreferences,
    InboxItem,
    Locale,
    MessageChannel,
    MessagePublic,
    PreviewPublic,
    PreviewRequest,
    SendRequest,
    TemplateName,
    TemplatePublic,
    TemplateUpsert,
    Unsubscribed,
)
from cloud.crm.messaging.templates import Template, check, preview

router = APIRouter(tags=["messaging"])
PREFIX = "/v1/messaging"


@router.put(
    PREFIX + "/templates/{name}/{channel}/{locale}",
    summary="Create or replace a template's locale variant",
    description="The template is compiled first: a syntax error is a 422 naming the line.",
)
def put_template(
    name: TemplateName,
    channel: MessageChannel,
    locale: Locale,
    body: TemplateUpsert,
    conn: ConnDep,
    _: MarketerDep,
) -> TemplatePublic:
    """Store a variant once it compiles."""
    check(Template(name, channel.value, locale, body.format, body.body, body.subject))
    row = repo.upsert_template(
        conn, name=name, channel=channel.value, locale=locale, format=body.format,
        subject=body.subject, body=body.body,
    )  # fmt: skip
    return TemplatePublic.model_validate(row)


@router.get(PREFIX + "/templates", summary="List templates")
def list_templates(
    conn: ConnDep,
    _: MarketerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[TemplatePublic]:
    """Every variant, by name, channel and locale."""
    return [TemplatePublic.model_validate(r) for r in repo.list_templates(conn, limit, offset)]


@router.get(PREFIX + "/templates/{name}/{channel}", summary="A template's locale variants")
def get_template(
    name: TemplateName, channel: MessageChannel, conn: ConnDep, _: MarketerDep
) -> list[TemplatePublic]:
    """The variants; 404 when there are none."""
    rows = repo.template_variants(conn, name, channel.value)
    if not rows:
        raise MessagingNotFoundError(f"no template {name!r} for channel {channel.value!r}")
    return [TemplatePublic.model_validate(r) for r in rows]


@router.delete(
    PREFIX + "/templates/{name}/{channel}/{locale}",
    summary="Delete a locale variant",
    status_code=204,
)
def delete_template(
    name: TemplateName, channel: MessageChannel, locale: Locale, conn: ConnDep, _: MarketerDep
) -> Response:
    """Delete; 404 when it does not exist."""
    if not repo.delete_template(conn, name, channel.value, locale):
        raise MessagingNotFoundError(f"no template {name!r}/{channel.value}/{locale}")
    return Response(status_code=204)


@router.post(
    PREFIX + "/templates/preview",
    summary="Preview a template with a sample profile",
    description="Renders a stored template (by name, with locale fallback) or unsaved content;"
    " a syntax error, an undefined variable or a body too long for the channel is a 422.",
    responses=problem_responses(404),
)
def preview_template(body: PreviewRequest, conn: ConnDep, _: MarketerDep) -> PreviewPublic:
    """Render without sending."""
    channel = body.channel.value
    if body.content is not None:
        c = body.content
        template = Template(
            body.name or "preview", channel, body.locale or "en", c.format, c.body, c.subject
        )
    elif body.name is not None:
        template = _stored(conn, body.name, channel, body.locale)
    else:
        raise MessagingInvalidInputError("give either `name` or `content`")
    out = preview(template, body.variables)
    return PreviewPublic.model_validate(out, from_attributes=True)


def _stored(conn: ConnDep, name: str, channel: str, locale: str | None) -> Template:
    if not repo.template_variants(conn, name, channel):
        raise MessagingNotFoundError(f"no template {name!r} for channel {channel!r}")
    return find_template(conn, name, channel, locale)


@router.post(
    PREFIX + "/messages",
    summary="Send a message to a customer (Idempotency-Key required)",
    description="Queues the message (202); consent, suppression, quiet hours and caps are"
    " checked when it leaves, and each decision is recorded. A retry with the same key and body"
    " returns the same message (`replayed`); another body with that key is a 409.",
    status_code=202,
    responses=problem_responses(404),
)
def send_message(
    body: SendRequest,
    conn: ConnDep,
    _: MarketerDep,
    key: IdempotencyKeyDep,
    settings: SettingsDep,
) -> MessagePublic:
    """Queue once per key; without a channel the bandit picks it (a `choose` decision)."""
    cfg = messaging_config(settings)
    out = service.send(
        conn, profile_id=body.profile_id, channel=body.channel.value if body.channel else None,
        template=body.template, variables=body.variables, purpose=body.purpose,
        priority=body.priority, locale=body.locale, idempotency_key=key,
        best_time=body.send_time == "best", policy=cfg.policy,
        configured=set(cfg.channels) | set(getattr(cfg, "routes", {})),
    )  # fmt: skip
    return MessagePublic.model_validate(out)


@router.get(
    "/v1/customers/{profile_id}/channel-preferences",
    summary="The bandit's posterior per channel and send hour",
    description="Beta posteriors (segment prior plus the customer's own settled messages) of"
    " the engagement rate per channel and per local send-hour bucket. The customer's trials"
    " whose outcome window has passed are settled first.",
    responses=problem_responses(404),
)
def channel_preferences(
    profile_id: RowId, conn: ConnDep, _: MarketerDep, settings: SettingsDep
) -> ChannelPreferences:
    """Posterior means and 90 % intervals."""
    live = service.live_profile(conn, profile_id)
    prefs = selection.preferences(conn, live, policy=messaging_config(settings).policy)

    def view(a: selection.ArmView) -> ArmPosterior:
        low, high = a.posterior.interval(0.9)
        return ArmPosterior(
            arm=a.arm, trials=a.trials, successes=a.successes, prior_alpha=a.prior.alpha,
            prior_beta=a.prior.beta, alpha=a.posterior.alpha, beta=a.posterior.beta,
            mean=a.posterior.mean, low=low, high=high,
        )  # fmt: skip

    return ChannelPreferences(
        profile_id=live, time_zone=prefs.time_zone, window_h=prefs.window_h,
        bucket_h=selection.DEFAULT.bucket_h, segments=prefs.segments,
        channels=[view(a) for a in prefs.channels], hours=[view(a) for a in prefs.hours],
    )  # fmt: skip


@router.get(PREFIX + "/messages/{message_id}", summary="A message's status and decisions")
def get_message(message_id: RowId, conn: ConnDep, _: MarketerDep) -> MessagePublic:
    """State, provider id and every decision with its reason."""
    return MessagePublic.model_validate(service.status(conn, message_id))


@router.get("/v1/customers/{profile_id}/inbox", summary="A customer's in-app inbox")
def get_inbox(
    profile_id: RowId,
    conn: ConnDep,
    _: MarketerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=PG_BIGINT_MAX)] = None,
) -> list[InboxItem]:
    """Newest first; page with `before` (an inbox item id)."""
    rows = service.inbox(conn, profile_id=profile_id, limit=limit, before=before)
    return [InboxItem.model_validate(r) for r in rows]


@router.post(
    PREFIX + "/unsubscribe/{token}",
    summary="One-click unsubscribe (RFC 8058)",
    description="The mail client POSTs `List-Unsubscribe=One-Click` to the URL in the"
    " List-Unsubscribe header; the signed token is the credential. An unknown or forged token"
    " is a 404.",
)
def one_click_unsubscribe(
    token: Annotated[str, Path(max_length=200)], conn: ConnDep, settings: SettingsDep
) -> Unsubscribed:
    """Suppress marketing on the token's channel."""
    secret = _unsubscribe_secret(settings)
    try:
        who = unsubscribe.verify(secret, token) if secret else None
    except unsubscribe.BadUnsubscribeTokenError:
        who = None
    if who is None:
        raise MessagingNotFoundError("unknown or forged unsubscribe link")
    service.unsubscribe(conn, profile_id=who.profile_id, channel=who.channel)
    return Unsubscribed(channel=who.channel, unsubscribed=True)


def _unsubscribe_secret(settings: SettingsDep) -> str | None:
    for cfg in messaging_config(settings).channels.values():
        secret = getattr(cfg, "unsubscribe_secret", None)
        if secret is not None:
            return str(secret.get_secret_value())
    return None


@router.post(
    PREFIX + "/campaigns",
    summary="Queue a campaign to a segment or a list of customers (Idempotency-Key required)",
    description="Queues one message per customer of the segment (its current members) or of"
    " `profile_ids` who has an address for the channel, in one transaction (202: committed)."
    " Consent, suppression, quiet hours and caps are checked as each message leaves. A retry"
    " with the same key and body returns the same campaign (`replayed`); another body with that"
    " key is a 409; an unknown segment or template is a 404.",
    status_code=202,
    responses=problem_responses(404, 409),
)
def queue_campaign(
    body: campaigns.CampaignCreate, conn: ConnDep, who: MarketerDep, key: IdempotencyKeyDep
) -> campaigns.CampaignPublic:
    """Queue once per key."""
    return campaigns.queue(conn, body, idempotency_key=key, actor=who.subject)


@router.get(
    PREFIX + "/campaigns/{campaign_id}",
    summary="A campaign and its messages per status",
    responses=problem_responses(404),
)
def get_campaign(campaign_id: RowId, conn: ConnDep, _: MarketerDep) -> campaigns.CampaignPublic:
    """Audience, queued, and how many messages are queued, sent, skipped, failed..."""
    return campaigns.get(conn, campaign_id)


class ReviewRequest(BaseModel):
    """A reviewer's verdict on a message in doubt."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["resend", "delivered", "drop"] = Field(
        description="resend: it never reached the customer; delivered: it did; drop: give up."
    )
    note: str = Field(default="", max_length=1000, pattern=r"^[^\x00]*$", description="Why.")


@router.get(
    PREFIX + "/review",
    summary="Messages in doubt (a worker died while the provider had them)",
    description="`uncertain` messages, by id: the provider may or may not have accepted them and"
    " the channel cannot drop a duplicate, so they are never resent without a review.",
)
def list_in_doubt(
    conn: ConnDep,
    _: MarketerDep,
    after: Annotated[int, Query(ge=0, le=PG_BIGINT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[MessagePublic]:
    """Page with `after` (the last id seen)."""
    return [
        MessagePublic.model_validate(r) for r in service.in_doubt(conn, after=after, limit=limit)
    ]


@router.post(
    PREFIX + "/messages/{message_id}/review",
    summary="Resolve a message in doubt: resend, delivered or drop",
    description="Recorded with the reviewer as a `review` decision. A message not in doubt is a"
    " 409 (a second review of the same message included).",
    responses=problem_responses(404, 409),
)
def review_message(
    message_id: RowId, body: ReviewRequest, conn: ConnDep, who: MarketerDep
) -> MessagePublic:
    """Apply the verdict."""
    out = service.review(
        conn, message_id=message_id, outcome=body.outcome, note=body.note, actor=who.subject
    )
    return MessagePublic.model_validate(out)
