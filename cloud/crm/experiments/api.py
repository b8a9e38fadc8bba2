"""The experiments API: CRUD, start/stop, assignment for SDKs and servers, results, snapshots,
and the sample-size calculator."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.problems import READ_ONLY, problem_responses
from cloud.api.schemas.limits import PG_BIGINT_MAX, RowId
from cloud.crm.experiments import power, repository, service
from cloud.crm.experiments.analysis import Results
from cloud.crm.experiments.repository import ExperimentRow
from cloud.crm.experiments.schemas import (
    AssignPublic,
    AssignRequest,
    Design,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentUpdate,
    SampleSizePublic,
    SampleSizeRequest,
    SnapshotPublic,
)

router = APIRouter(tags=["experiments"])
After = Annotated[int, Query(ge=0, le=PG_BIGINT_MAX, description="Return ids above this one.")]
Limit = Annotated[int, Query(ge=1, le=1000)]
_DESIGN_FIELDS = set(Design.model_fields)


def _public(row: ExperimentRow) -> ExperimentPublic:
    return ExperimentPublic(
        id=row.id,
        key=row.key,
        name=row.name,
        description=row.description,
        status=row.status,
        design=service.design_of(row),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
    )


@router.post(
    "/v1/experiments",
    status_code=201,
    summary="Create an experiment (draft)",
    description="Weights must sum to 1; a metric on an event never seen nor planned, or an"
    " unknown segment, is a 422 naming the field.",
    responses=problem_responses(409),
)
def create_experiment(body: ExperimentCreate, conn: ConnDep, who: MarketerDep) -> ExperimentPublic:
    """Save a draft."""
    design = Design.model_validate(body.model_dump(include=_DESIGN_FIELDS))
    row = service.create(
        conn,
        key=body.key,
        name=body.name,
        description=body.description,
        design=design,
        actor=who.subject,
    )
    return _public(row)


@router.get("/v1/experiments", summary="List experiments")
def list_experiments(
    conn: ConnDep,
    _: MarketerDep,
    after: After = 0,
    limit: Limit = 100,
    status: Literal["draft", "running", "stopped"] | None = None,
) -> list[ExperimentPublic]:
    """Live experiments by id."""
    return [_public(r) for r in repository.list_(conn, after=after, limit=limit, status=status)]


@router.post(
    "/v1/experiments/sample-size",
    summary="Sample size, MDE and duration",
    openapi_extra=READ_ONLY,
)
def sample_size(body: SampleSizeRequest, _: MarketerDep) -> SampleSizePublic:
    """Power analysis for proportions or means (statsmodels)."""
    p = power.plan(
        metric_type=body.metric_type,
        baseline=body.baseline,
        std_dev=body.std_dev,
        mde=body.mde,
        n=body.sample_size_per_variant,
        alpha=body.alpha,
        power=body.power,
        variants=body.variants,
        daily_traffic=body.daily_traffic,
    )
    return SampleSizePublic(
        per_variant=p.per_variant,
        total=p.total,
        mde=p.mde,
        mde_absolute=p.mde_absolute,
        effect_size=p.effect_size,
        days=p.days,
    )


@router.get(
    "/v1/experiments/{experiment_id}", summary="An experiment", responses=problem_responses(404)
)
def get_experiment(experiment_id: RowId, conn: ConnDep, _: MarketerDep) -> ExperimentPublic:
    """One experiment."""
    return _public(service.get(conn, experiment_id))


@router.patch(
    "/v1/experiments/{experiment_id}",
    summary="Change an experiment",
    responses=problem_responses(404, 409),
)
def update_experiment(
    experiment_id: RowId, body: ExperimentUpdate, conn: ConnDep, _: MarketerDep
) -> ExperimentPublic:
    """Rename or describe; a new design only while a draft (409 otherwise)."""
    row = service.update(
        conn, experiment_id, name=body.name, description=body.description, design=body.design
    )
    return _public(row)


@router.delete(
    "/v1/experiments/{experiment_id}",
    status_code=204,
    summary="Archive an experiment",
    responses=problem_responses(404, 409),
)
def archive_experiment(experiment_id: RowId, conn: ConnDep, _: MarketerDep) -> Response:
    """Hide a draft or stopped experiment; its data is kept."""
    service.archive(conn, experiment_id)
    return Response(status_code=204)


@router.post(
    "/v1/experiments/{experiment_id}/start",
    summary="Start assigning",
    responses=problem_responses(404, 409),
)
def start_experiment(experiment_id: RowId, conn: ConnDep, _: MarketerDep) -> ExperimentPublic:
    """Draft -> running; an overlapping namespace range is a 409."""
    return _public(service.start(conn, experiment_id))


@router.post(
    "/v1/experiments/{experiment_id}/stop",
    summary="Stop assigning",
    responses=problem_responses(404, 409),
)
def stop_experiment(experiment_id: RowId, conn: ConnDep, _: MarketerDep) -> ExperimentPublic:
    """Running -> stopped; results stay readable."""
    return _public(service.stop(conn, experiment_id))


@router.post(
    "/v1/experiments/{experiment_id}/assign",
    summary="Assign a customer (sticky)",
    description="The stored variant if any; else targeting, namespace, coverage, holdout and"
    " GrowthBook's hash (or the stratum's permuted block). A first assignment writes an"
    " `experiment.exposed` event.",
    responses=problem_responses(404, 409),
)
def assign(
    experiment_id: RowId, body: AssignRequest, conn: ConnDep, _: MarketerDep
) -> AssignPublic:
    """Where the customer falls."""
    a = service.assign(conn, experiment_id, body.profile_id, body.attributes)
    return AssignPublic(
        experiment_id=experiment_id,
        profile_id=body.profile_id,
        in_experiment=a.in_experiment,
        variant=a.variant,
        variant_key=a.variant_key,
        reason=a.reason,
        bucket=a.bucket,
    )


@router.get(
    "/v1/experiments/{experiment_id}/sdk",
    summary="The experiment as a GrowthBook SDK reads it",
    responses=problem_responses(404),
)
def sdk_definition(experiment_id: RowId, conn: ConnDep, _: MarketerDep) -> dict[str, Any]:
    """key, seed, hashVersion, weights, coverage, namespace: an SDK given these assigns as the
    server does (not for stratified designs, which only the server can assign)."""
    row = service.get(conn, experiment_id)
    d = service.sdk_design(row)
    design = service.design_of(row)
    return {
        "key": d.key,
        "seed": d.seed,
        "hashVersion": d.hash_version,
        "hashAttribute": "id",
        "variations": [v.key for v in design.variants],
        "weights": d.weights,
        "coverage": d.coverage,
        "namespace": list(d.namespace) if d.namespace else None,
        "active": row.status == "running",
        "serverOnly": design.stratify_by is not None or design.holdout > 0,
    }


@router.get(
    "/v1/experiments/{experiment_id}/results",
    summary="Live results",
    description="No exposures yet is a 422 naming `exposures`.",
    responses=problem_responses(404),
)
def results(experiment_id: RowId, conn: ConnDep, _: MarketerDep) -> Results:
    """Frequentist or Bayesian comparisons, SRM, CUPED and corrected p-values."""
    return service.results(conn, experiment_id)


@router.get(
    "/v1/experiments/{experiment_id}/snapshots",
    summary="Daily result snapshots",
    responses=problem_responses(404),
)
def snapshots(
    experiment_id: RowId,
    conn: ConnDep,
    _: MarketerDep,
    days: Annotated[int, Query(ge=1, le=3650, description="How many days back.")] = 90,
) -> list[SnapshotPublic]:
    """Stored daily results, oldest first."""
    service.get(conn, experiment_id)
    rows = repository.snapshots(conn, experiment_id, days)
    return [SnapshotPublic(day=d, taken_at=t, results=r) for d, t, r in rows]
