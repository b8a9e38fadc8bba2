"""Request and response models of the messaging API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.api.schemas.limits import PG_BIGINT_MAX, JsonObject

TemplateName = Annotated[
    str, Field(pattern=r"^[a-z0-9_][a-z0-9_.-]{0,99}$", description="Template name.")
]
Locale = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$",
        max_length=35,
        description="BCP 47 locale, e.g. en or zh-CN.",
    ),
]


class MessageChannel(StrEnum):
    """Channels the hub sends on."""

    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    WECHAT = "wechat"
    PUSH = "push"
    INAPP = "inapp"


class TemplateUpsert(BaseModel):
    """A locale variant's content."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["text", "html", "mjml"] = Field(description="Body markup.")
    subject: str | None = Field(default=None, max_length=1000, description="Subject/title.")
    body: str = Field(min_length=1, max_length=200_000, description="Jinja2 body.")


class TemplatePublic(TemplateUpsert):
    """A stored locale variant."""

    id: int
    name: str
    channel: str
    locale: str
    created_at: datetime
    updated_at: datetime


class PreviewRequest(BaseModel):
    """Render a stored template, or the given content, with the sample profile."""

    model_config = ConfigDict(extra="forbid")
    channel: MessageChannel = Field(description="The channel whose length rules apply.")
    name: TemplateName | None = Field(default=None, description="A stored template's name.")
    locale: Locale | None = Field(default=None, description="Wanted locale (with fallback).")
    content: TemplateUpsert | None = Field(
        default=None, description="Unsaved content to preview instead of a stored template."
    )
    variables: JsonObject = Field(
        default_factory=dict, description="Variables over the sample profile."
    )


class PreviewPublic(BaseModel):
    """A rendered preview."""

    locale: str
    subject: str | None
    text: str
    html: str | None
    sms_segments: int | None
    sms_encoding: str | None


class SendRequest(BaseModel):
    """Send a template to one customer; the policy runs when the message leaves."""

    model_config = ConfigDict(extra="forbid")
    profile_id: int = Field(ge=1, le=PG_BIGINT_MAX, description="The customer.")
    channel: MessageChannel | None = Field(
        default=None,
        description="The channel; none: the bandit picks the customer's best one among those"
        " with the template, an address and (for marketing) consent.",
    )
    send_time: Literal["now", "best"] = Field(
        default="now",
        description="best: the bandit also picks the send hour (in the customer's time zone),"
        " set as `not_before`.",
    )
    template: TemplateName
    variables: JsonObject = Field(default_factory=dict, description="Template variables.")
    purpose: Literal["transactional", "marketing"] = Field(
        description="Marketing needs consent and honours quiet hours and caps."
    )
    priority: Literal["high", "normal", "low"] = Field(
        default="normal", description="High beats caps; low is dropped when capped."
    )
    locale: Locale | None = Field(
        default=None, description="Locale; none: the customer's language."
    )


class Decision(BaseModel):
    """A recorded decision."""

    decision: str
    reason: str
    decided_at: datetime


class MessagePublic(BaseModel):
    """A message's state."""

    id: int
    profile_id: int
    channel: str
    template: str
    purpose: str
    priority: str
    locale: str | None
    status: str = Field(description="queued, claimed, sending, sent, skipped, failed or uncertain.")
    attempts: int
    not_before: datetime | None
    provider_id: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    replayed: bool | None = Field(default=None, description="On send: a retried request.")
    decisions: list[Decision] | None = None


class InboxItem(BaseModel):
    """An in-app message."""

    id: int
    message_id: int
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None


class Unsubscribed(BaseModel):
    """The outcome of a one-click unsubscribe."""

    channel: str
    unsubscribed: bool


class ArmPosterior(BaseModel):
    """The bandit's belief about one channel or local hour bucket for one customer."""

    arm: str = Field(description="The channel, or the bucket's local start hour.")
    trials: int = Field(description="The customer's settled marketing messages on this arm.")
    successes: int = Field(description="Of those, engaged within the outcome window.")
    prior_alpha: float = Field(description="Segment prior (pooled, shrunk): alpha.")
    prior_beta: float = Field(description="Segment prior: beta.")
    alpha: float = Field(description="Posterior alpha.")
    beta: float = Field(description="Posterior beta.")
    mean: float = Field(description="Posterior mean engagement rate.")
    low: float = Field(description="5 % quantile of the posterior.")
    high: float = Field(description="95 % quantile of the posterior.")


class ChannelPreferences(BaseModel):
    """A customer's posterior per channel and per local send-hour bucket."""

    profile_id: int
    time_zone: str = Field(description="The zone the hour buckets are in.")
    window_h: int = Field(description="Hours after a send an engagement counts.")
    bucket_h: int = Field(description="Hours in each bucket.")
    segments: list[int] = Field(description="Segments whose pooled counts form the prior.")
    channels: list[ArmPosterior]
    hours: list[ArmPosterior]
