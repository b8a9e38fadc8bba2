"""Campaigns: one message per person of a segment (or of a list of customers), queued in one
set-based INSERT ... SELECT in the caller's transaction, once per idempotency key. The send-time
policy (consent, suppression, quiet hours, caps) runs for each message when it leaves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloud.api.schemas.limits import PG_BIGINT_MAX, JsonObject
from cloud.crm.idempotency import request_hash
from cloud.crm.messaging import repository as repo
from cloud.crm.messaging.builtin import BUILTIN
from cloud.crm.messaging.errors import MessagingConflictError, MessagingNotFoundError
from cloud.crm.messaging.policy import Priority, Purpose
from cloud.crm.messaging.schemas import Locale, MessageChannel, TemplateName
from cloud.crm.messaging.service import ADDRESS_KINDS

Conn = psycopg.Connection[Any]
#: Most customers a campaign may list by id (larger audiences are segments).
MAX_LISTED = 10_000
Id = Annotated[int, Field(ge=1, le=PG_BIGINT_MAX)]


class SegmentAudience(BaseModel):
    """The current members of a segment."""

    model_config = ConfigDict(extra="forbid")
    segment_id: Id = Field(description="The segment.")


class ListAudience(BaseModel):
    """Customers by id (duplicates and merged profiles count once)."""

    model_config = ConfigDict(extra="forbid")
    profile_ids: list[Id] = Field(min_length=1, max_length=MAX_LISTED, description="Customers.")


class CampaignCreate(BaseModel):
    """A campaign: who (a segment or a list of customers), on which channel, with what."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$", description="Label.")
    channel: MessageChannel = Field(description="The channel every message goes on.")
    template: TemplateName = Field(description="The template (locale picked per customer).")
    variables: JsonObject = Field(default_factory=dict, description="Template variables.")
    purpose: Purpose = Field(default="marketing", description="Marketing needs consent.")
    priority: Priority = Field(default="normal", description="Priority under frequency caps.")
    locale: Locale | None = Field(default=None, description="Locale; none: each customer's.")
    audience: SegmentAudience | ListAudience = Field(
        description='`{"segment_id": n}` or `{"profile_ids": [...]}`.'
    )

    @field_validator("variables")
    @classmethod
    def _no_nul(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _has_nul(value):
            raise ValueError("a key or string holds a NUL character, which cannot be stored")
        return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class CampaignPublic(BaseModel):
    """A queued campaign and where its messages stand."""

    id: int
    name: str
    channel: str
    template: str
    purpose: str
    priority: str
    locale: str | None
    segment_id: int | None
    audience: int = Field(description="Distinct customers in the audience when queued.")
    queued: int = Field(description="Messages queued (customers with an address).")
    without_address: int = Field(description="Customers skipped: no address for the channel.")
    created_at: datetime
    statuses: dict[str, int] = Field(description="Messages per status now.")
    replayed: bool = Field(default=False, description="True: an earlier request's campaign.")


def _public(conn: Conn, row: dict[str, Any], *, replayed: bool = False) -> CampaignPublic:
    return CampaignPublic(
        **{k: row[k] for k in ("id", "name", "channel", "template", "purpose", "priority")},
        locale=row["locale"],
        segment_id=row["segment_id"],
        audience=row["audience"],
        queued=row["queued"],
        without_address=row["audience"] - row["queued"],
        created_at=row["created_at"],
        statuses=repo.campaign_status_counts(conn, row["id"]),
        replayed=replayed,
    )


def queue(conn: Conn, body: CampaignCreate, *, idempotency_key: str, actor: str) -> CampaignPublic:
    """Queue the campaign's messages once per key (a retry returns the first, `replayed`; the
    same key with another body is a conflict). The caller commits."""
    channel = body.channel.value
    digest = request_hash(body.model_dump(mode="json"))
    who = body.audience
    segment_id = who.segment_id if isinstance(who, SegmentAudience) else None
    profile_ids = who.profile_ids if isinstance(who, ListAudience) else None
    if segment_id is not None and not repo.segment_exists(conn, segment_id):
        raise MessagingNotFoundError(f"segment {segment_id} does not exist")
    if not repo.template_variants(conn, body.template, channel) and not BUILTIN.get(
        (body.template, channel)
    ):
        raise MessagingNotFoundError(f"no template {body.template!r} for channel {channel!r}")
    row, created = repo.insert_campaign(
        conn, name=body.name, channel=channel, template=body.template, purpose=body.purpose,
        priority=body.priority, locale=body.locale, segment_id=segment_id,
        variables=body.variables, idempotency_key=idempotency_key, request_hash=digest,
        created_by=actor,
    )  # fmt: skip
    if not created:
        if row["request_hash"] != digest:
            raise MessagingConflictError(
                f"Idempotency-Key {idempotency_key!r} was already used with a different request"
            )
        return _public(conn, row, replayed=True)
    kinds = () if channel == "inapp" else ADDRESS_KINDS[channel]
    audience, queued = repo.queue_campaign_messages(conn, row, kinds=kinds, profile_ids=profile_ids)
    return _public(conn, {**row, "audience": audience, "queued": queued})


def get(conn: Conn, campaign_id: int) -> CampaignPublic:
    """A campaign with its messages' statuses; not found: MessagingNotFoundError."""
    row = repo.get_campaign(conn, campaign_id)
    if row is None:
        raise MessagingNotFoundError(f"campaign {campaign_id} does not exist")
    return _public(conn, row)
