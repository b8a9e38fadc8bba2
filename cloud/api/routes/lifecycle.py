"""Lifecycle reporting: stage entries and conversion per store and period."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api.deps import ConnDep, ViewerDep
from cloud.api.params import IsoAwareDatetime
from cloud.api.schemas.crm import FunnelPublic
from cloud.core.security import Role
from cloud.crm import lifecycle
from cloud.crm.errors import CrmInvalidInputError
from cloud.db.repositories import crm_events as ev_repo

router = APIRouter(prefix="/v1/lifecycle", tags=["lifecycle"])


@router.get("/funnel", summary="Stage entries and conversion between stages")
def funnel(
    conn: ConnDep,
    who: ViewerDep,
    start: Annotated[IsoAwareDatetime, Query(description="Period start (inclusive).")],
    end: Annotated[IsoAwareDatetime, Query(description="Period end (exclusive).")],
    store_id: Annotated[str | None, Query(description="Only transitions at this store.")] = None,
) -> FunnelPublic:
    """Store managers must name one of their stores; marketers may see the whole chain."""
    if end <= start:
        raise CrmInvalidInputError("end must be after start")
    if store_id is None:
        who.require_role(Role.ADMIN, Role.HQ_MARKETER)
    else:
        who.require_store(store_id)
    out = lifecycle.funnel(conn, start=start, end=end, store_id=store_id)
    return FunnelPublic(
        start=start,
        end=end,
        store_id=store_id,
        entered=out["entered"],
        conversion=out["conversion"],
        current=ev_repo.current_stage_counts(conn) if store_id is None else {},
    )
