"""The scoring API for marketers: programmes and their rules, rescoring, dry runs, profile
scores with explanations and history, MQL/SQL transitions, qualify_lead, next-stage prediction,
journey health and journey analytics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.problems import READ_ONLY, problem_responses
from cloud.api.schemas.limits import PG_BIGINT_MAX, RowId
from cloud.crm.errors import CrmInvalidInputError, CrmNotFoundError
from cloud.crm.scoring import journey, service
from cloud.crm.scoring import repository as repo
from cloud.crm.scoring.schemas import (
    ContributionPublic,
    DropOffRow,
    DryRunProfile,
    DryRunPublic,
    DryRunRequest,
    FlowLink,
    FlowsPublic,
    HealthPublic,
    HistoryPoint,
    ModelPublic,
    NextStagePublic,
    PathCount,
    PathsPublic,
    ProgrammeCreate,
    ProgrammePublic,
    ProgrammeUpdate,
    QualifyPublic,
    QualifyRequest,
    RescorePublic,
    ScorePublic,
    TransitionPublic,
)
from cloud.crm.scoring.scores import Contribution

router = APIRouter(tags=["scoring"])
After = Annotated[int, Query(ge=0, le=PG_BIGINT_MAX, description="Return ids above this one.")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Start = Annotated[datetime | None, Query(description="Period start (default: 90 days ago).")]
End = Annotated[datetime | None, Query(description="Period end, exclusive (default: now).")]
P = "/v1/scoring/programmes"


def _period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    e = end or datetime.now(UTC)
    s = start or e - timedelta(days=90)
    for name, v in (("start", s), ("end", e)):
        if v.tzinfo is None:
            raise CrmInvalidInputError(f"{name}: must carry a timezone offset")
    if s >= e:
        raise CrmInvalidInputError("start: must be before end")
    return s, e


def _public(row: repo.ProgrammeRow) -> ProgrammePublic:
    return ProgrammePublic.model_validate(row, from_attributes=True)


def _contribs(items: list[Contribution]) -> list[ContributionPublic]:
    return [ContributionPublic(part=c.part, key=c.key, points=c.points) for c in items]


@router.post(
    P, status_code=201, summary="Create a scoring programme", responses=problem_responses(409)
)
def create_programme(body: ProgrammeCreate, conn: ConnDep, who: MarketerDep) -> ProgrammePublic:
    """Save a programme: rules, decay, fit, prediction, weights, thresholds (422 names a bad
    field). Scores are built by the next rescore (beat, or POST .../rescore)."""
    return _public(service.create(conn, name=body.name, config=body.config, actor=who.subject))


@router.get(P, summary="List scoring programmes")
def list_programmes(conn: ConnDep, _: MarketerDep) -> list[ProgrammePublic]:
    """Every programme by id."""
    return [_public(p) for p in repo.list_programmes(conn)]


@router.get(P + "/{programme_id}", summary="A programme", responses=problem_responses(404))
def get_programme(programme_id: RowId, conn: ConnDep, _: MarketerDep) -> ProgrammePublic:
    """One programme."""
    return _public(service.get(conn, programme_id))


@router.put(
    P + "/{programme_id}", summary="Replace a programme's rules", responses=problem_responses(404)
)
def update_programme(
    programme_id: RowId, body: ProgrammeUpdate, conn: ConnDep, _: MarketerDep
) -> ProgrammePublic:
    """New config; the scores are rebuilt by the next sweep or an explicit rescore."""
    return _public(service.update(conn, programme_id, config=body.config))


@router.delete(
    P + "/{programme_id}",
    status_code=204,
    summary="Delete a programme",
    responses=problem_responses(404),
)
def delete_programme(programme_id: RowId, conn: ConnDep, _: MarketerDep) -> Response:
    """Delete the programme with its scores, history and model."""
    service.delete(conn, programme_id)
    return Response(status_code=204)


@router.post(
    P + "/{programme_id}/rescore",
    summary="Rebuild every score now",
    responses=problem_responses(404, 409),
)
def rescore(programme_id: RowId, conn: ConnDep, _: MarketerDep) -> RescorePublic:
    """Recompute behaviour and fit of every profile from all events (in SQL), log and emit the
    threshold crossings."""
    r = service.rescore(conn, programme_id, reason="rescore requested")
    return RescorePublic(
        programme=r.programme, version=r.version, profiles=r.profiles,
        history_rows=r.history_rows, transitions=r.transitions,
    )  # fmt: skip


@router.post(
    "/v1/scoring/dry-run", summary="What rules would give some profiles", openapi_extra=READ_ONLY
)
def dry_run(
    body: DryRunRequest,
    conn: ConnDep,
    _: MarketerDep,
    programme_id: Annotated[int | None, Query(ge=1, le=PG_BIGINT_MAX)] = None,
) -> DryRunPublic:
    """Score up to 1000 profiles under the given config from all their events; nothing is
    saved. With `programme_id`, that programme's predictive model supplies the prediction."""
    if programme_id is not None:
        service.get(conn, programme_id)
    rows, unknown = service.dry_run(
        conn, config=body.config, profile_ids=body.profile_ids, programme=programme_id
    )
    return DryRunPublic(
        profiles=[
            DryRunProfile(
                profile_id=r.profile_id, behaviour=r.behaviour, fit=r.fit,
                predictive=r.predictive, combined=r.combined, level=r.level,
                contributions=_contribs(r.contributions),
            )
            for r in rows
        ],
        unknown=unknown,
    )  # fmt: skip


@router.get(
    P + "/{programme_id}/profiles/{profile_id}",
    summary="A profile's score",
    responses=problem_responses(404),
)
def profile_score(
    programme_id: RowId, profile_id: RowId, conn: ConnDep, _: MarketerDep
) -> ScorePublic:
    """The score now (behaviour decayed to now) with the top contributions."""
    s = service.current(conn, programme_id, profile_id)
    return ScorePublic(
        programme=s.programme, profile_id=s.profile_id, as_of=s.as_of, behaviour=s.behaviour,
        fit=s.fit, predictive=s.predictive, combined=s.combined, level=s.level,
        contributions=_contribs(s.contributions), updated_at=s.updated_at,
    )  # fmt: skip


@router.get(
    P + "/{programme_id}/profiles/{profile_id}/history",
    summary="Score history",
    responses=problem_responses(404),
)
def score_history(
    programme_id: RowId, profile_id: RowId, conn: ConnDep, _: MarketerDep, limit: Limit = 100
) -> list[HistoryPoint]:
    """Score changes, newest first."""
    service.get(conn, programme_id)
    return [
        HistoryPoint(at=a, combined=c, behaviour=b, fit=f, predictive=p, reason=r)
        for a, c, b, f, p, r in repo.history(conn, programme_id, profile_id, limit=limit)
    ]


@router.get(
    P + "/{programme_id}/transitions",
    summary="MQL/SQL transitions",
    responses=problem_responses(404),
)
def transitions(
    programme_id: RowId,
    conn: ConnDep,
    _: MarketerDep,
    profile_id: Annotated[int | None, Query(ge=1, le=PG_BIGINT_MAX)] = None,
    after: After = 0,
    limit: Limit = 100,
) -> list[TransitionPublic]:
    """Threshold crossings by id, with the reason."""
    service.get(conn, programme_id)
    rows = repo.transitions(conn, programme_id, profile_id=profile_id, after=after, limit=limit)
    return [
        TransitionPublic(
            id=r[0], profile_id=r[1], level=r[2], direction=r[3], score=r[4], threshold=r[5],
            reason=r[6], at=r[7],
        )
        for r in rows
    ]  # fmt: skip


@router.get(
    P + "/{programme_id}/model",
    summary="Predictive model metrics",
    responses=problem_responses(404),
)
def model_metrics(programme_id: RowId, conn: ConnDep, _: MarketerDep) -> ModelPublic:
    """Progressive validation: ROC AUC, log loss, Brier, ECE and the reliability curve of the
    raw and calibrated predictions, and of the rules-only and combined scores."""
    service.get(conn, programme_id)
    model, version = service.load_model(conn, programme_id)
    return ModelPublic(programme=programme_id, version=version, metrics=model.metrics())


@router.post(
    "/v1/scoring/qualify",
    summary="qualify_lead",
    openapi_extra=READ_ONLY,
    responses=problem_responses(404),
)
def qualify(body: QualifyRequest, conn: ConnDep, _: MarketerDep) -> QualifyPublic:
    """Whether the profile's combined score now reaches the threshold."""
    r = service.qualify_lead(conn, body.profile_id, body.threshold, programme=body.programme_id)
    return QualifyPublic(
        profile_id=r.profile_id, programme=r.programme, score=r.score, threshold=r.threshold,
        qualified=r.qualified, level=r.level,
    )  # fmt: skip


def _live(conn: ConnDep, profile_id: int) -> tuple[int, str | None]:
    row = conn.execute(
        "SELECT coalesce(p.merged_into, p.id), coalesce(m.lifecycle_stage, p.lifecycle_stage)"
        " FROM crm_profiles p LEFT JOIN crm_profiles m ON m.id = p.merged_into WHERE p.id = %s",
        (profile_id,),
    ).fetchone()
    if row is None:
        raise CrmNotFoundError(f"profile {profile_id} does not exist")
    return int(row[0]), row[1]


@router.get(
    "/v1/scoring/profiles/{profile_id}/next-stage",
    summary="Next lifecycle stage",
    responses=problem_responses(404),
)
def next_stage(
    profile_id: RowId,
    conn: ConnDep,
    _: MarketerDep,
    window_days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> NextStagePublic:
    """P(each next stage, or staying, within the window) from the transition log and the
    profile's activity in the last 30 days."""
    pid, stage = _live(conn, profile_id)
    now = datetime.now(UTC)
    model = journey.fit_next_stage(conn, now=now, window_days=window_days)
    activity = journey.activity_of(conn, pid, now)
    return NextStagePublic(
        profile_id=pid, stage=stage, activity_30d=activity, window_days=window_days,
        probabilities=model.predict(stage, activity), samples=model.samples(),
    )  # fmt: skip


@router.get(
    "/v1/scoring/profiles/{profile_id}/health",
    summary="Journey health",
    responses=problem_responses(404),
)
def journey_health(profile_id: RowId, conn: ConnDep, _: MarketerDep) -> HealthPublic:
    """Engagement, recency and momentum, and their weighted score."""
    pid, _stage = _live(conn, profile_id)
    h = journey.health(conn, pid, datetime.now(UTC))
    return HealthPublic(
        profile_id=pid, score=h.score, engagement=h.engagement, recency=h.recency,
        momentum=h.momentum, days_since_last=h.days_since_last,
    )  # fmt: skip


@router.get("/v1/scoring/journeys/flows", summary="Stage-to-stage flows (Sankey)")
def journey_flows(
    conn: ConnDep, _: MarketerDep, start: Start = None, end: End = None
) -> FlowsPublic:
    """Nodes and links of the lifecycle transitions in the period."""
    s, e = _period(start, end)
    nodes, links = journey.flows(conn, start=s, end=e)
    return FlowsPublic(
        nodes=nodes, links=[FlowLink(source=a, target=b, profiles=n) for a, b, n in links]
    )


@router.get("/v1/scoring/journeys/paths", summary="Touchpoint paths to purchase")
def journey_paths(
    conn: ConnDep,
    _: MarketerDep,
    start: Start = None,
    end: End = None,
    max_steps: Annotated[int, Query(ge=1, le=20)] = 5,
    top: Annotated[int, Query(ge=1, le=200)] = 20,
) -> PathsPublic:
    """The most common channel paths before a first purchase in the period."""
    s, e = _period(start, end)
    buyers, paths = journey.paths_to_purchase(conn, start=s, end=e, max_steps=max_steps, top=top)
    return PathsPublic(buyers=buyers, paths=[PathCount(path=p, buyers=n) for p, n in paths])


@router.get("/v1/scoring/journeys/drop-off", summary="Drop-off by stage and channel")
def journey_drop_off(
    conn: ConnDep, _: MarketerDep, idle_days: Annotated[int, Query(ge=1, le=3650)] = 30
) -> list[DropOffRow]:
    """Profiles stalled at each stage (nothing for `idle_days`), by their last channel."""
    rows = journey.drop_off(conn, now=datetime.now(UTC), idle_days=idle_days)
    return [
        DropOffRow(stage=s, channel=c, stalled=a, at_stage=b, rate=round(a / b, 4) if b else 0.0)
        for s, c, a, b in rows
    ]
