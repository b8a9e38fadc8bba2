"""Touchpoints: web, app, store visits, e-mail/SMS engagement, support contacts."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.routes.customers_deps import RulesDep
from cloud.api.schemas.crm import TouchpointCreate, TouchpointPublic
from cloud.crm.touchpoints import record_touchpoint

router = APIRouter(prefix="/v1/touchpoints", tags=["touchpoints"])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Record a touchpoint")
def create_touchpoint(
    body: TouchpointCreate, conn: ConnDep, _: MarketerDep, rules: RulesDep, response: Response
) -> TouchpointPublic:
    """Attach an interaction to the person its identifiers resolve to (200 when a duplicate)."""
    res = record_touchpoint(
        conn,
        channel=body.channel,
        event=body.event,
        identifiers=body.identifiers,
        occurred_at=body.occurred_at,
        store_id=body.store_id,
        properties=body.properties,
        external_id=body.external_id,
        attributes=body.attributes.model_dump(exclude_none=True, mode="json"),
        rules=rules,
    )
    if not res.created:
        response.status_code = status.HTTP_200_OK
    return TouchpointPublic(
        touchpoint_id=res.touchpoint_id,
        profile_id=res.profile_id,
        created=res.created,
        lifecycle_stage=res.lifecycle_stage,
    )
