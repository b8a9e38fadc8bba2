"""Request and response bodies of the automation API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from cloud.api.schemas.limits import PG_BIGINT_MAX, json_bounds
from cloud.crm.automation.definition import Definition, NodeId

DefinitionBody = Annotated[
    Definition, json_bounds(max_depth=16, max_keys=20_000, max_bytes=512_000)
]
ProfileId = Annotated[int, Field(ge=1, le=PG_BIGINT_MAX)]
WorkflowName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class WorkflowCreate(BaseModel):
    """A new workflow (a draft with version 1 of its definition)."""

    model_config = ConfigDict(extra="forbid")

    name: WorkflowName
    definition: DefinitionBody = Field(description="The graph (see docs/automation.md).")


class DefinitionPublish(BaseModel):
    """A new version of the definition."""

    model_config = ConfigDict(extra="forbid")

    definition: DefinitionBody


class ValidateRequest(BaseModel):
    """A definition to check without saving."""

    model_config = ConfigDict(extra="forbid")

    definition: DefinitionBody
    workflow_id: int | None = Field(default=None, ge=1, le=PG_BIGINT_MAX)


class ValidationPublic(BaseModel):
    """Whether the definition is valid, and each problem with its node."""

    valid: bool
    errors: list[dict[str, Any]]


class WorkflowPublic(BaseModel):
    """A workflow with its current version's definition."""

    id: int
    name: str
    status: Literal["draft", "active", "paused", "archived"]
    current_version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    definition: Definition


class StatusChange(BaseModel):
    """Activate or pause."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "paused"]


class MigrateRequest(BaseModel):
    """Move the live executions of `from_version` to the current version."""

    model_config = ConfigDict(extra="forbid")

    from_version: int = Field(ge=1, le=2**31 - 1)
    mapping: dict[NodeId, NodeId] = Field(max_length=500, description="Old node -> new node.")


class MigratePublic(BaseModel):
    """How many executions moved."""

    moved: int


class EnrolRequest(BaseModel):
    """Customers to enter (the API-call trigger)."""

    model_config = ConfigDict(extra="forbid")

    profile_ids: list[ProfileId] = Field(min_length=1, max_length=1000)


class EnrolPublic(BaseModel):
    """Per customer, the new execution id (null: already in, or not allowed back)."""

    executions: dict[str, int | None]


class ExecutionPublic(BaseModel):
    """One execution, why the customer is where they are, and what happens next."""

    id: int
    workflow_id: int
    version: int
    profile_id: int
    status: str
    node_id: str
    wait_until: datetime | None
    enrolled_at: datetime
    finished_at: datetime | None
    exit_reason: str | None
    converted_at: datetime | None
    explanation: dict[str, JsonValue]


class GroupPublic(BaseModel):
    """Goal conversion of a group."""

    enrolled: int
    converted: int
    rate: float | None
    mean_time_to_convert_s: float | None
    median_time_to_convert_s: float | None


class StatsPublic(BaseModel):
    """A workflow's performance."""

    nodes: dict[str, dict[str, int]]
    paths: list[dict[str, Any]]
    executions: dict[str, int]
    goal: str | None
    treated: GroupPublic
    holdout: GroupPublic


class DryRunRequest(BaseModel):
    """A definition to try on real profiles (given ids, or a sample)."""

    model_config = ConfigDict(extra="forbid")

    definition: DefinitionBody
    profile_ids: list[ProfileId] | None = Field(default=None, max_length=200)
    sample_size: int = Field(default=20, ge=1, le=200)


class DryRunPublic(BaseModel):
    """Each profile's predicted path."""

    profiles: list[dict[str, JsonValue]]
