"""Early-warning lists: customers ranked by value at risk, by store and segment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.schemas import ml as s
from cloud.ml import service

router = APIRouter(prefix="/v1/risk", tags=["risk"])


@router.get("/customers", summary="Valuable customers at risk, ranked by churn probability x CLV")
def at_risk(
    conn: ConnDep,
    principal: MarketerDep,
    store_id: Annotated[str | None, Query(max_length=64, description="Home store.")] = None,
    segment: Annotated[s.SegmentName | None, Query(description="Lifecycle segment.")] = None,
    min_churn: Annotated[
        float, Query(ge=0.0, le=1.0, description="Lowest churn probability listed.")
    ] = 0.5,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000, description="Page offset.")] = 0,
) -> s.AtRiskList:
    """From the latest scoring run (the beat task scores everyone periodically)."""
    rows = service.at_risk(
        conn, store_id=store_id, segment=segment, min_churn=min_churn, limit=limit, offset=offset
    )
    return s.AtRiskList(
        items=[s.AtRiskPublic.model_validate(r) for r in rows], limit=limit, offset=offset
    )
