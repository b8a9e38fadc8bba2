"""The automation API for marketers: workflows (CRUD, validate, activate, pause, publish a
version, migrate executions), enrolment, per-customer executions, statistics, dry run."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Response

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.problems import READ_ONLY, problem_responses
from cloud.api.schemas.limits import PG_BIGINT_MAX, RowId
from cloud.crm.automation import service, stats
from cloud.crm.automation.repository import WorkflowRow
from cloud.crm.automation.schemas import (
    DefinitionPublish,
    DryRunPublic,
    DryRunRequest,
    EnrolPublic,
    EnrolRequest,
    ExecutionPublic,
    GroupPublic,
    MigratePublic,
    MigrateRequest,
    StatsPublic,
    StatusChange,
    ValidateRequest,
    ValidationPublic,
    WorkflowCreate,
    WorkflowPublic,
)

router = APIRouter(tags=["automation"])
BASE = "/v1/automation/workflows"
After = Annotated[int, Query(ge=0, le=PG_BIGINT_MAX, description="Return ids above this one.")]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _public(conn: ConnDep, wf: WorkflowRow) -> WorkflowPublic:
    _, d = service.get(conn, wf.id)
    return WorkflowPublic(
        id=wf.id, name=wf.name, status=wf.status, current_version=wf.current_version,
        created_by=wf.created_by, created_at=wf.created_at, updated_at=wf.updated_at, definition=d,
    )  # fmt: skip


@router.post(
    BASE,
    status_code=201,
    summary="Create a workflow",
    description="A draft with version 1. A definition that breaks a graph rule or names a"
    " missing template, segment or workflow is a 422 whose `errors` name the nodes.",
    responses=problem_responses(409),
)
def create_workflow(body: WorkflowCreate, conn: ConnDep, who: MarketerDep) -> WorkflowPublic:
    """Save a workflow."""
    wf = service.create(conn, name=body.name, definition=body.definition, actor=who.subject)
    return _public(conn, wf)


@router.get(BASE, summary="List workflows")
def list_workflows(
    conn: ConnDep, _: MarketerDep, after: After = 0, limit: Limit = 100
) -> list[WorkflowPublic]:
    """Workflows by id."""
    return [_public(conn, w) for w in service.list_(conn, after=after, limit=limit)]


@router.post(
    "/v1/automation/validate",
    summary="Check a definition without saving it",
    openapi_extra=READ_ONLY,
)
def validate_definition(body: ValidateRequest, conn: ConnDep, _: MarketerDep) -> ValidationPublic:
    """Every problem, each naming its node (an empty list: valid)."""
    found = service.problems(conn, body.definition, workflow_id=body.workflow_id)
    return ValidationPublic(valid=not found, errors=[p.as_error() for p in found])


@router.post(
    "/v1/automation/dry-run",
    summary="Predict paths over real profiles",
    description="No side effect: runs read-only and is rolled back.",
    openapi_extra=READ_ONLY,
)
def dry_run(body: DryRunRequest, conn: ConnDep, _: MarketerDep) -> DryRunPublic:
    """Each profile's predicted path through the definition now (a definition that breaks a
    graph rule is a 422 naming the nodes, as on create)."""
    service.check_graph_or_422(body.definition)
    out = stats.dry_run(
        conn, body.definition, profile_ids=body.profile_ids, sample=body.sample_size
    )
    return DryRunPublic(profiles=out)


@router.get(f"{BASE}/{{workflow_id}}", summary="A workflow", responses=problem_responses(404))
def get_workflow(workflow_id: RowId, conn: ConnDep, _: MarketerDep) -> WorkflowPublic:
    """One workflow with its current definition."""
    wf, _d = service.get(conn, workflow_id)
    return _public(conn, wf)


@router.put(
    f"{BASE}/{{workflow_id}}/definition",
    summary="Publish a new version",
    description="Executions in flight stay on their version unless migrated.",
    responses=problem_responses(404),
)
def publish_version(
    workflow_id: RowId, body: DefinitionPublish, conn: ConnDep, who: MarketerDep
) -> WorkflowPublic:
    """Store the definition as the next version."""
    return _public(conn, service.publish(conn, workflow_id, definition=body.definition,
                                         actor=who.subject))  # fmt: skip


@router.post(
    f"{BASE}/{{workflow_id}}/status",
    summary="Activate or pause",
    responses=problem_responses(404),
)
def change_status(
    workflow_id: RowId, body: StatusChange, conn: ConnDep, _: MarketerDep
) -> WorkflowPublic:
    """Active workflows enrol and advance; paused ones hold every execution where it is."""
    return _public(conn, service.set_status(conn, workflow_id, body.status))


@router.delete(
    f"{BASE}/{{workflow_id}}", status_code=204, summary="Archive", responses=problem_responses(404)
)
def archive_workflow(workflow_id: RowId, conn: ConnDep, _: MarketerDep) -> Response:
    """Archive: executions in flight exit at their next step."""
    service.set_status(conn, workflow_id, "archived")
    return Response(status_code=204)


@router.post(
    f"{BASE}/{{workflow_id}}/migrate",
    summary="Move executions to the current version",
    responses=problem_responses(404, 409),
)
def migrate(
    workflow_id: RowId, body: MigrateRequest, conn: ConnDep, _: MarketerDep
) -> MigratePublic:
    """With an explicit node mapping (every node holding an execution must be mapped)."""
    moved = service.migrate(conn, workflow_id, from_version=body.from_version,
                            mapping=dict(body.mapping))  # fmt: skip
    return MigratePublic(moved=moved)


@router.post(
    f"{BASE}/{{workflow_id}}/enrol",
    summary="Enter customers (API-call trigger)",
    responses=problem_responses(404, 409),
)
def enrol(workflow_id: RowId, body: EnrolRequest, conn: ConnDep, _: MarketerDep) -> EnrolPublic:
    """Start executions; null for a customer already in it or not allowed back."""
    out = service.enrol_many(conn, workflow_id, profile_ids=body.profile_ids)
    return EnrolPublic(executions={str(k): v for k, v in out.items()})


@router.delete(
    f"{BASE}/{{workflow_id}}/customers/{{profile_id}}",
    status_code=204,
    summary="Remove a customer",
    responses=problem_responses(404),
)
def remove_customer(
    workflow_id: RowId, profile_id: RowId, conn: ConnDep, who: MarketerDep
) -> Response:
    """End the customer's live execution: no further action, not even one already due."""
    service.remove(conn, workflow_id, profile_id, actor=who.subject)
    return Response(status_code=204)


@router.get(
    f"{BASE}/{{workflow_id}}/statistics",
    summary="Performance",
    responses=problem_responses(404),
)
def statistics(workflow_id: RowId, conn: ConnDep, _: MarketerDep) -> StatsPublic:
    """Per node entered/completed/failed/waiting, per path, goal conversion vs holdout."""
    _wf, d = service.get(conn, workflow_id)
    s = stats.statistics(conn, workflow_id, d)
    return StatsPublic(
        nodes=s["nodes"], paths=s["paths"], executions=s["executions"], goal=s["goal"],
        treated=GroupPublic(**asdict(s["treated"])), holdout=GroupPublic(**asdict(s["holdout"])),
    )  # fmt: skip


@router.get("/v1/automation/customers/{profile_id}/executions", summary="A customer's executions")
def customer_executions(profile_id: RowId, conn: ConnDep, _: MarketerDep) -> list[ExecutionPublic]:
    """Newest first, each with why the customer is at its step and what happens next."""
    return [
        ExecutionPublic(
            id=ex.id,
            workflow_id=ex.workflow_id,
            version=ex.version,
            profile_id=ex.profile_id,
            status=ex.status,
            node_id=ex.node_id,
            wait_until=ex.wait_until,
            enrolled_at=ex.enrolled_at,
            finished_at=ex.finished_at,
            exit_reason=ex.exit_reason,
            converted_at=ex.converted_at,
            explanation=why,
        )
        for ex, why in service.executions_of(conn, profile_id)
    ]
