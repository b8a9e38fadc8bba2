"""Marketer routes of event sources: create (admin), list, settings, tracking plan, violations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, status

from cloud.api.deps import AdminDep, ConnDep, MarketerDep
from cloud.crm.events import repository, sources
from cloud.crm.events.repository import Source
from cloud.crm.events.schemas import (
    PlanEntry,
    PlanType,
    SourceCreate,
    SourceCreated,
    SourcePublic,
    SourceUpdate,
    ViolationPublic,
)

router = APIRouter(prefix="/v1/events/sources", tags=["events"])
SourceId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Source id.")]
EventName = Annotated[str, Path(min_length=1, max_length=200, description="Event name.")]


def _public(s: Source) -> SourcePublic:
    return SourcePublic(
        id=s.id, name=s.name, write_key_prefix=s.write_key_prefix, plan_mode=s.plan_mode,
        retention_days=s.retention_days, consent_required=s.consent_required,
        created_at=s.created_at, revoked_at=s.revoked_at,
    )  # fmt: skip


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an event source")
def create_source(body: SourceCreate, conn: ConnDep, _: AdminDep) -> SourceCreated:
    """Create a source; its write key is in this answer only (only its hash is kept)."""
    source, key = sources.create_source(
        conn, source_id=body.id, name=body.name, plan_mode=body.plan_mode,
        retention_days=body.retention_days, consent_required=body.consent_required,
    )  # fmt: skip
    return SourceCreated(**_public(source).model_dump(), write_key=key)


@router.get("", summary="List event sources")
def list_sources(conn: ConnDep, _: MarketerDep) -> list[SourcePublic]:
    """Every source (never their keys)."""
    return [_public(s) for s in repository.list_sources(conn)]


@router.patch("/{source_id}", summary="Change an event source")
def update_source(
    source_id: SourceId, body: SourceUpdate, conn: ConnDep, _: MarketerDep
) -> SourcePublic:
    """Change the plan mode (flag or reject) or the retention of a source."""
    return _public(
        sources.update_source(
            conn,
            source_id,
            plan_mode=body.plan_mode,
            retention_days=body.retention_days,
            clear_retention=body.clear_retention,
        )
    )


@router.get("/{source_id}/plan", summary="A source's tracking plan")
def get_plan(source_id: SourceId, conn: ConnDep, _: MarketerDep) -> list[PlanEntry]:
    """Every (type, event) schema of the source's tracking plan."""
    return [
        PlanEntry.model_validate({"type": t, "event": e, "schema": s})
        for (t, e), s in sorted(sources.plan(conn, source_id).items())
    ]


@router.put(
    "/{source_id}/plan/{type}/{event}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set one event's schema",
)
def put_plan_entry(
    source_id: SourceId,
    type: PlanType,
    event: EventName,
    schema: Annotated[dict[str, Any], Body(description="A JSON Schema (draft 2020-12).")],
    conn: ConnDep,
    _: MarketerDep,
) -> None:
    """Validate this event's properties (identify: traits, event `*`) against `schema`."""
    sources.set_plan_entry(conn, source_id, type, event, schema)


@router.delete(
    "/{source_id}/plan/{type}/{event}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove one event's schema",
)
def delete_plan_entry(
    source_id: SourceId,
    type: PlanType,
    event: EventName,
    conn: ConnDep,
    _: MarketerDep,
) -> None:
    """Remove the event from the tracking plan."""
    sources.remove_plan_entry(conn, source_id, type, event)


@router.get("/{source_id}/violations", summary="A source's counted violations")
def get_violations(source_id: SourceId, conn: ConnDep, _: MarketerDep) -> list[ViolationPublic]:
    """Counted violations (plan, clock, consent...) by event and kind, most frequent first."""
    return [
        ViolationPublic(
            event=v.event,
            kind=v.kind,
            action=v.action,
            count=v.count,
            first_seen=v.first_seen,
            last_seen=v.last_seen,
            last_message_id=v.last_message_id,
            last_detail=v.last_detail,
        )
        for v in sources.violations(conn, source_id)
    ]
