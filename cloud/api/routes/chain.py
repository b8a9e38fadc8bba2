"""Chain-wide views for headquarters (admin and hq_marketer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.params import IsoDatetime
from cloud.api.schemas import footfall as s
from cloud.footfall import service

router = APIRouter(prefix="/v1/chain", tags=["chain"])


@router.get("/live", summary="Every store now")
def chain_live(conn: ConnDep, _p: MarketerDep) -> s.ChainLive:
    """Occupancy, today's visitors and devices online per store."""
    return service.chain_live(conn)


@router.get("/footfall", summary="Footfall per store over a range, against last week")
def chain_footfall(
    conn: ConnDep,
    _p: MarketerDep,
    start: Annotated[
        IsoDatetime | None, Query(alias="from", description="Start (UTC default).")
    ] = None,
    end: Annotated[IsoDatetime | None, Query(alias="to", description="End, exclusive.")] = None,
) -> s.ChainFootfall:
    """Stores ranked by visitors (default: the last 7 days)."""
    return service.chain_footfall(conn, start=start, end=end)
