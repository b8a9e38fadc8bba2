"""Request and response bodies of the scoring API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.api.schemas.limits import PG_BIGINT_MAX, json_bounds
from cloud.crm.scoring.rules import ProgrammeConfig

ConfigBody = Annotated[
    ProgrammeConfig, json_bounds(max_depth=12, max_keys=20_000, max_bytes=262_144)
]
ProfileId = Annotated[int, Field(ge=1, le=PG_BIGINT_MAX)]
ProgrammeName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class ProgrammeCreate(BaseModel):
    """A new scoring programme."""

    model_config = ConfigDict(extra="forbid")

    name: ProgrammeName
    config: ConfigBody = Field(default_factory=ProgrammeConfig)


class ProgrammeUpdate(BaseModel):
    """A programme's new config (the whole of it)."""

    model_config = ConfigDict(extra="forbid")

    config: ConfigBody


class ProgrammePublic(BaseModel):
    """A stored programme."""

    id: int
    name: str
    config: dict[str, Any]
    version: int
    rescored_version: int = Field(description="The config version the scores were rebuilt with.")
    created_by: str
    created_at: datetime
    updated_at: datetime


class RescorePublic(BaseModel):
    """What a full rescoring did."""

    programme: int
    version: int
    profiles: int
    history_rows: int
    transitions: int


class ContributionPublic(BaseModel):
    """Points of the combined score one item gives."""

    part: Literal["behaviour", "fit", "predictive"]
    key: str
    points: float


class ScorePublic(BaseModel):
    """A profile's current score and its explanation."""

    programme: str
    profile_id: int
    as_of: datetime
    behaviour: float
    fit: float
    predictive: float | None
    combined: float
    level: Literal["none", "mql", "sql"]
    contributions: list[ContributionPublic]
    updated_at: datetime | None


class HistoryPoint(BaseModel):
    """One score change."""

    at: datetime
    combined: float
    behaviour: float
    fit: float
    predictive: float | None
    reason: str


class TransitionPublic(BaseModel):
    """A logged MQL/SQL threshold crossing."""

    id: int
    profile_id: int
    level: Literal["mql", "sql"]
    direction: Literal["up", "down"]
    score: float
    threshold: float
    reason: str
    at: datetime


class DryRunRequest(BaseModel):
    """Rules to try on some profiles; nothing is saved."""

    model_config = ConfigDict(extra="forbid")

    config: ConfigBody
    profile_ids: Annotated[list[ProfileId], Field(min_length=1, max_length=1000)]


class DryRunProfile(BaseModel):
    """What the rules give one profile now."""

    profile_id: int
    behaviour: float
    fit: float
    predictive: float | None
    combined: float
    level: Literal["none", "mql", "sql"]
    contributions: list[ContributionPublic]


class DryRunPublic(BaseModel):
    """The dry run's answer."""

    profiles: list[DryRunProfile]
    unknown: list[int] = Field(description="Ids that name no profile.")


class QualifyRequest(BaseModel):
    """qualify_lead over HTTP."""

    model_config = ConfigDict(extra="forbid")

    profile_id: ProfileId
    threshold: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 70
    programme_id: Annotated[int, Field(ge=1, le=PG_BIGINT_MAX)] | None = None


class QualifyPublic(BaseModel):
    """Whether the lead qualifies."""

    profile_id: int
    programme: str
    score: float
    threshold: float
    qualified: bool
    level: Literal["none", "mql", "sql"]


class NextStagePublic(BaseModel):
    """P(next lifecycle stage within the window) for a profile."""

    profile_id: int
    stage: str | None
    activity_30d: int
    window_days: int
    probabilities: dict[str, float]
    samples: int = Field(description="Transitions the model was counted from.")


class HealthPublic(BaseModel):
    """The journey health score and its parts (0-100)."""

    profile_id: int
    score: float
    engagement: float
    recency: float
    momentum: float
    days_since_last: float | None


class FlowLink(BaseModel):
    """Profiles moving from one stage to another."""

    source: str
    target: str
    profiles: int


class FlowsPublic(BaseModel):
    """Sankey data."""

    nodes: list[str]
    links: list[FlowLink]


class PathCount(BaseModel):
    """A touchpoint path to purchase and how many buyers took it."""

    path: str
    buyers: int


class PathsPublic(BaseModel):
    """Top paths to a first purchase."""

    buyers: int
    paths: list[PathCount]


class DropOffRow(BaseModel):
    """Stalled profiles at a stage, by last channel."""

    stage: str
    channel: str
    stalled: int
    at_stage: int
    rate: float


class ModelPublic(BaseModel):
    """The predictive model's progressive-validation metrics."""

    programme: int
    version: int | None
    metrics: dict[str, Any]
