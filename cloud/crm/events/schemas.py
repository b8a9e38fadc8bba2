"""Wire schemas of event collection (the Segment spec's calls, camelCase or snake_case) and of
the source, tracking-plan and violation endpoints."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    WithJsonSchema,
    model_validator,
)

from cloud.api.schemas.limits import json_bounds

CallType = Literal["track", "identify", "page", "screen", "alias"]

#: The largest batch (calls) and request body (bytes) one collection request may carry.
MAX_BATCH = 500
MAX_BODY_BYTES = 512 * 1024

#: Bounds of the properties (traits) of one call: an oversized object is a 422 naming it.
MAX_DEPTH, MAX_KEYS, MAX_BYTES = 8, 200, 32_768
# the shared check is a plain one-argument function (see cloud.api.schemas.limits)
_full_check = cast(
    Callable[[object], object],
    json_bounds(max_depth=MAX_DEPTH, max_keys=MAX_KEYS, max_bytes=MAX_BYTES).func,
)
_SCALARS = (str, int, float, bool, type(None))


_NOT_FINITE = "numbers must be finite (NaN and Infinity are not JSON and cannot be stored)"


def _bounded_properties(value: object) -> object:
    """The shared JSON bounds, with a fast path for the usual flat object that is clearly
    small: every value a scalar and at most 4 bytes per character well under the limit.
    NaN and infinities (Python's JSON reader takes them) are refused: jsonb cannot hold them."""
    if isinstance(value, dict) and len(value) <= MAX_KEYS:
        chars = 0
        for k, v in value.items():
            if not isinstance(v, _SCALARS):
                break
            if v.__class__ is float and v - v != 0.0:  # NaN or an infinity
                raise ValueError(_NOT_FINITE)
            chars += len(k) + (len(v) if isinstance(v, str) else 24) + 6
        else:
            if chars * 4 + 2 <= MAX_BYTES:
                return value
    checked = _full_check(value)
    try:
        json.dumps(checked, allow_nan=False, default=str)
    except ValueError as exc:
        raise ValueError(_NOT_FINITE) from exc
    return checked


#: properties and traits of one call: 8 levels, 200 keys, 32 KiB (oversized is a 422).
# Documented as a plain object: the recursive JSON-value schema, three times per call of a
# batch, makes schema-driven tools (schemathesis' coverage phase) explode.
_OBJECT = WithJsonSchema({"type": "object", "additionalProperties": True})
Properties = Annotated[dict[str, JsonValue], BeforeValidator(_bounded_properties), _OBJECT]
#: context is read (consent) but not stored; the body limit bounds it.
Context = Annotated[dict[str, JsonValue], _OBJECT]
Ident = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=200)]

_IN = ConfigDict(populate_by_name=True, extra="ignore", str_strip_whitespace=True)


class _CallFields(BaseModel):
    """The fields of a Segment-spec call (the type comes from the body or the path)."""

    model_config = _IN

    type: CallType | None = None
    message_id: Ident | None = Field(
        None, alias="messageId", description="Unique per source; a retry with it is a no-op."
    )
    anonymous_id: Ident | None = Field(
        None, alias="anonymousId", description="Device/browser id before the person is known."
    )
    user_id: Ident | None = Field(None, alias="userId", description="Your id of the person.")
    previous_id: Ident | None = Field(
        None, alias="previousId", description="alias: the id being merged into user_id."
    )
    event: Name | None = Field(None, description="track: the event name.")
    name: Name | None = Field(None, description="page/screen: its name.")
    properties: Properties | None = Field(None, description="track/page/screen properties.")
    traits: Properties | None = Field(None, description="identify: traits (email, phone...).")
    context: Context | None = Field(None, description="Context (library, page, consent...).")
    timestamp: AwareDatetime | None = Field(
        None, description="When it happened, by the sender's clock (ISO 8601 with offset)."
    )
    sent_at: AwareDatetime | None = Field(
        None, alias="sentAt", description="When the sender sent it, by the same clock."
    )

    @model_validator(mode="after")
    def _required_per_type(self) -> _CallFields:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("userId or anonymousId is required")
        if self.type == "track" and self.event is None:
            raise ValueError("track needs `event`")
        if self.type == "alias" and (self.previous_id is None or self.user_id is None):
            raise ValueError("alias needs `previousId` and `userId`")
        return self


class CallIn(_CallFields):
    """One Segment-spec call: track, identify, page, screen or alias."""

    type: CallType = Field(description="The call: track, identify, page, screen or alias.")


class BatchIn(BaseModel):
    """A batch of calls (Segment's /v1/batch); `sentAt` applies to calls without their own."""

    model_config = _IN

    batch: list[CallIn] = Field(min_length=1, max_length=MAX_BATCH, description="The calls.")
    sent_at: AwareDatetime | None = Field(None, alias="sentAt", description="When it was sent.")
    context: Context | None = Field(None, description="Context for calls without their own.")
    write_key: str | None = Field(
        None, alias="writeKey", description="The write key, where no header can be set (beacon)."
    )


class SingleIn(_CallFields):
    """One call sent to its own endpoint (/v1/events/track...); the path gives its type."""

    type: CallType | None = Field(None, description="Optional; must match the path.")
    write_key: str | None = Field(None, alias="writeKey", description="As in a batch.")


class RejectedCall(BaseModel):
    """A call that was not stored, and why."""

    index: int = Field(description="Its position in the batch.")
    message_id: str | None = Field(description="Its messageId.")
    reason: str = Field(description="Why it was not stored.")


class BatchResult(BaseModel):
    """What a collection request stored (everything it says is committed)."""

    accepted: int = Field(description="Calls stored now.")
    duplicates: int = Field(description="Calls whose messageId this source already sent.")
    flagged: int = Field(description="Stored calls that broke the tracking plan (counted).")
    skipped_no_consent: list[RejectedCall] = Field(
        description="Calls not stored: the source needs consent and the call carried none."
    )


class SourceCreate(BaseModel):
    """A new write-key source."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Short id, e.g. `web`.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    plan_mode: Literal["flag", "reject"] = Field("flag", description="What a violation does.")
    retention_days: int | None = Field(None, ge=1, le=36_500, description="Keep events so long.")
    consent_required: bool = Field(True, description="Store only calls that carry consent.")


class SourcePublic(BaseModel):
    """A source as shown to marketers (never its key)."""

    id: str
    name: str
    write_key_prefix: str = Field(description="The first characters of its write key.")
    plan_mode: str
    retention_days: int | None
    consent_required: bool
    created_at: datetime
    revoked_at: datetime | None


class SourceCreated(SourcePublic):
    """A source just created: the only time its write key is shown."""

    write_key: str = Field(description="Send it as HTTP Basic user name, or as writeKey.")


class SourceUpdate(BaseModel):
    """Change a source's plan mode or retention."""

    model_config = ConfigDict(extra="forbid")

    plan_mode: Literal["flag", "reject"] | None = Field(None, description="What a violation does.")
    retention_days: int | None = Field(None, ge=1, le=36_500, description="Keep events so long.")
    clear_retention: bool = Field(False, description="Keep events for ever.")


PlanType = Literal["track", "identify", "page", "screen"]


class PlanEntry(BaseModel):
    """The JSON schema of one event's properties (identify: its traits)."""

    type: PlanType
    event: str = Field(description="Event name (identify: `*`; page/screen: the name).")
    schema_: dict[str, Any] = Field(alias="schema", description="A JSON Schema (draft 2020-12).")

    model_config = ConfigDict(populate_by_name=True)


class ViolationPublic(BaseModel):
    """Counted violations of one kind for one event of a source."""

    event: str
    kind: str = Field(description="plan, clock_skew, timestamp_out_of_range, consent_missing...")
    action: str = Field(description="flagged (stored), rejected (not stored) or corrected.")
    count: int
    first_seen: datetime
    last_seen: datetime
    last_message_id: str | None
    last_detail: str
