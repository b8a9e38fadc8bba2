"""Request and response bodies of the segments API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.api.schemas.limits import PG_BIGINT_MAX, json_bounds
from cloud.crm.segments.rules import Rule

#: A rule as JSON: 8 rule levels are at most ~20 JSON levels; bounded before pydantic walks it.
RuleBody = Annotated[Rule, json_bounds(max_depth=24, max_keys=2_000, max_bytes=65_536)]
ProfileId = Annotated[int, Field(ge=1, le=PG_BIGINT_MAX)]
SegmentName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
Description = Annotated[str, Field(max_length=2_000, pattern=r"^[^\x00]*$")]


class SegmentCreate(BaseModel):
    """A new segment: `dynamic` with a rule, or `static` (members imported) without."""

    model_config = ConfigDict(extra="forbid")

    name: SegmentName
    description: Description = ""
    kind: Literal["static", "dynamic"] = Field(description="`dynamic` members follow the rule.")
    rule: RuleBody | None = Field(default=None, description="The rule (see docs/segments.md).")


class SegmentUpdate(BaseModel):
    """Fields to change; a new rule re-evaluates everyone at once."""

    model_config = ConfigDict(extra="forbid")

    name: SegmentName | None = None
    description: Description | None = None
    rule: RuleBody | None = None


class SegmentPublic(BaseModel):
    """A segment and its current size."""

    id: int
    name: str
    description: str
    kind: Literal["static", "dynamic"]
    rule: dict[str, object] | None
    size: int = Field(description="Current members.")
    created_by: str
    created_at: datetime
    updated_at: datetime


class PreviewRequest(BaseModel):
    """A rule to size before saving it."""

    model_config = ConfigDict(extra="forbid")

    rule: RuleBody
    sample_size: Annotated[int, Field(ge=0, le=100)] = 20


class PreviewPublic(BaseModel):
    """How many match now, and the lowest profile ids among them."""

    size: int
    sample: list[int]


class MemberPublic(BaseModel):
    """A current member and when this stint began."""

    profile_id: int
    entered_at: datetime


class SizePoint(BaseModel):
    """A segment's size at the daily snapshot."""

    day: date
    size: int


class MembersImport(BaseModel):
    """Profile ids to add to a static segment (merged ids count as the person they are now)."""

    model_config = ConfigDict(extra="forbid")

    profile_ids: Annotated[list[ProfileId], Field(min_length=1, max_length=10_000)]


class ImportPublic(BaseModel):
    """What an import did."""

    added: int
    already_members: int
    unknown: list[int] = Field(description="Ids that name no profile (nothing was done for them).")
