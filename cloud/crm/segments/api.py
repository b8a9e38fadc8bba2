"""Segments for marketers: CRUD, preview, members, size history, static list import."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.problems import READ_ONLY, problem_responses
from cloud.api.schemas.limits import PG_BIGINT_MAX, RowId
from cloud.crm.segments import service
from cloud.crm.segments.repository import SegmentRow
from cloud.crm.segments.schemas import (
    ImportPublic,
    MemberPublic,
    MembersImport,
    PreviewPublic,
    PreviewRequest,
    SegmentCreate,
    SegmentPublic,
    SegmentUpdate,
    SizePoint,
)

router = APIRouter(tags=["segments"])
After = Annotated[int, Query(ge=0, le=PG_BIGINT_MAX, description="Return ids above this one.")]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _public(seg: SegmentRow) -> SegmentPublic:
    return SegmentPublic.model_validate(seg, from_attributes=True)


@router.post(
    "/v1/segments",
    status_code=201,
    summary="Create a segment",
    description="A dynamic segment's members are evaluated before the answer. A rule naming an"
    " unknown attribute or event property is a 422 that names it.",
    responses=problem_responses(409),
)
def create_segment(body: SegmentCreate, conn: ConnDep, who: MarketerDep) -> SegmentPublic:
    """Save a segment."""
    seg = service.create(
        conn,
        name=body.name,
        description=body.description,
        kind=body.kind,
        rule=body.rule,
        actor=who.subject,
    )
    return _public(seg)


@router.get("/v1/segments", summary="List segments")
def list_segments(
    conn: ConnDep, _: MarketerDep, after: After = 0, limit: Limit = 100
) -> list[SegmentPublic]:
    """Live segments by id."""
    return [_public(s) for s in service.list_(conn, after=after, limit=limit)]


@router.post(
    "/v1/segments/preview",
    summary="Size and sample a rule without saving it",
    openapi_extra=READ_ONLY,
)
def preview_segment(body: PreviewRequest, conn: ConnDep, _: MarketerDep) -> PreviewPublic:
    """How many profiles match the rule now, and a sample of them."""
    out = service.preview(conn, rule=body.rule, sample=body.sample_size)
    return PreviewPublic(size=out.size, sample=out.sample)


@router.get("/v1/segments/{segment_id}", summary="A segment", responses=problem_responses(404))
def get_segment(segment_id: RowId, conn: ConnDep, _: MarketerDep) -> SegmentPublic:
    """One segment with its current size."""
    return _public(service.get(conn, segment_id))


@router.patch(
    "/v1/segments/{segment_id}",
    summary="Change a segment",
    responses=problem_responses(404, 409),
)
def update_segment(
    segment_id: RowId, body: SegmentUpdate, conn: ConnDep, _: MarketerDep
) -> SegmentPublic:
    """Rename, describe, or give a dynamic segment a new rule (members re-evaluated)."""
    seg = service.update(
        conn, segment_id, name=body.name, description=body.description, rule=body.rule
    )
    return _public(seg)


@router.delete(
    "/v1/segments/{segment_id}",
    status_code=204,
    summary="Archive a segment",
    responses=problem_responses(404),
)
def archive_segment(segment_id: RowId, conn: ConnDep, _: MarketerDep) -> Response:
    """Hide the segment; membership history is kept."""
    service.archive(conn, segment_id)
    return Response(status_code=204)


@router.get(
    "/v1/segments/{segment_id}/members",
    summary="Current members",
    responses=problem_responses(404),
)
def list_members(
    segment_id: RowId, conn: ConnDep, _: MarketerDep, after: After = 0, limit: Limit = 100
) -> list[MemberPublic]:
    """Members by profile id, with when their current stint began."""
    rows = service.members(conn, segment_id, after=after, limit=limit)
    return [MemberPublic(profile_id=p, entered_at=t) for p, t in rows]


@router.post(
    "/v1/segments/{segment_id}/members",
    summary="Import members into a static segment",
    responses=problem_responses(404, 409),
)
def import_members(
    segment_id: RowId, body: MembersImport, conn: ConnDep, _: MarketerDep
) -> ImportPublic:
    """Add profiles; unknown ids are listed, a dynamic segment is a 409."""
    out = service.import_members(conn, segment_id, profile_ids=body.profile_ids)
    return ImportPublic(added=out.added, already_members=out.already_members, unknown=out.unknown)


@router.get(
    "/v1/segments/{segment_id}/sizes",
    summary="Segment size over time",
    responses=problem_responses(404),
)
def size_history(
    segment_id: RowId,
    conn: ConnDep,
    _: MarketerDep,
    days: Annotated[int, Query(ge=1, le=3650, description="How many days back.")] = 90,
) -> list[SizePoint]:
    """The daily snapshots, oldest first."""
    return [SizePoint(day=d, size=s) for d, s in service.size_history(conn, segment_id, days=days)]
