"""Store footfall: live state, server-sent events, history, engagement and demographics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from cloud.api.deps import ConnDep, PoolDep, ViewerDep
from cloud.api.params import IsoDatetime
from cloud.api.schemas import footfall as s
from cloud.api.schemas.footfall_fleet import StoreId
from cloud.footfall import service
from cloud.footfall.stream import event_stream, hub_for, open_stream

router = APIRouter(prefix="/v1/stores/{store_id}", tags=["footfall"])

FromQ = Annotated[
    IsoDatetime | None,
    Query(alias="from", description="Range start (ISO 8601; without offset: store local time)."),
]
ToQ = Annotated[
    IsoDatetime | None,
    Query(alias="to", description="Range end, exclusive (ISO 8601); default now."),
]


@router.get("/footfall/live", summary="What is happening in the store now")
def live(store_id: StoreId, conn: ConnDep, principal: ViewerDep) -> s.LiveFootfall:
    """Occupancy per zone, today's in/out per entrance, queues and devices online."""
    principal.require_store(store_id)
    return service.live_footfall(conn, store_id=store_id)


@router.get(
    "/footfall/stream",
    summary="Live events (server-sent events), one per ingested batch",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Event stream."}},
)
async def stream(
    store_id: StoreId,
    request: Request,
    pool: PoolDep,
    principal: ViewerDep,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this event id (sent by EventSource).")
    ] = None,
) -> EventSourceResponse:
    """`footfall` events as windows are ingested; reconnect with Last-Event-ID to replay."""
    principal.require_store(store_id)
    after = await open_stream(pool, store_id, last_event_id)
    hub = hub_for(request.app.state, request.app.state.settings.database_url, pool)
    return EventSourceResponse(event_stream(hub, pool, store_id, after), ping=15)


@router.get("/footfall", summary="Footfall history in the store's calendar")
def history(
    store_id: StoreId,
    conn: ConnDep,
    principal: ViewerDep,
    start: FromQ = None,
    end: ToQ = None,
    bucket: Annotated[s.Bucket, Query(description="Bucket size.")] = "1h",
) -> s.FootfallSeries:
    """In/out per 15 minutes, hour or local day, with the same buckets last week."""
    principal.require_store(store_id)
    return service.footfall_series(conn, store_id=store_id, start=start, end=end, bucket=bucket)


@router.get("/engagement", summary="Shelf interactions and dwell by shelf and zone")
def engagement(
    store_id: StoreId, conn: ConnDep, principal: ViewerDep, start: FromQ = None, end: ToQ = None
) -> s.EngagementReport:
    """Interactions and average dwell per shelf; visits and dwell per zone (default today)."""
    principal.require_store(store_id)
    return service.engagement(conn, store_id=store_id, start=start, end=end)


@router.get("/demographics", summary="Visitors by age band and gender")
def demographics(
    store_id: StoreId, conn: ConnDep, principal: ViewerDep, start: FromQ = None, end: ToQ = None
) -> s.DemographicsReport:
    """Aggregate demographics over a range (default today)."""
    principal.require_store(store_id)
    return service.demographics(conn, store_id=store_id, start=start, end=end)
