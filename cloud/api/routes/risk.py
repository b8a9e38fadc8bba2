"""Early-warning lists: customers ranked by value at risk, by store and segment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api.deps import ConnDep, ViewerDep
from cloud.api.schemas import ml as s
from cloud.core.errors import PermissionDeniedError
from cloud.core.security import Role
from cloud.ml import service

router = APIRouter(prefix="/v1/risk", tags=["risk"])


@router.get("/customers", summary="Valuable customers at risk, ranked by churn probability x CLV")
def at_risk(
    conn: ConnDep,
    principal: ViewerDep,
    store_id: Annotated[str | None, Query(max_length=64, description="Home store.")] = None,
    segment: Annotated[s.SegmentName | None, Query(description="Lifecycle segment.")] = None,
    min_churn: Annotated[
        float, Query(ge=0.0, le=1.0, description="Lowest churn probability listed.")
    ] = 0.5,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000, description="Page offset.")] = 0,
) -> s.AtRiskList:
    """From the latest scoring run (the beat task scores everyone periodically).

    Store managers see their own stores' customers only and must name the store.
    """
    if principal.role is Role.STORE_MANAGER and store_id is None:
        raise PermissionDeniedError("store managers must pass store_id (one of their stores)")
    if store_id is not None:
        principal.require_store(store_id)
    rows = service.at_risk(
        conn, store_id=store_id, segment=segment, min_churn=min_churn, limit=limit, offset=offset
    )
    return s.AtRiskList(
        items=[s.AtRiskPublic.model_validate(r) for r in rows], limit=limit, offset=offset
    )
