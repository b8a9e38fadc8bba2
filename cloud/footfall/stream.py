"""Server-sent events of a store: one LISTEN hub per process wakes the streams, the events table
feeds them.

Ingest writes one footfall_events row per store per committed batch and NOTIFYs inside the same
transaction. The process's `FootfallHub` LISTENs on one connection, reads each new event once
(never past an id that an open transaction may still commit) and offers it to the streams of its
store. A stream first replays what it missed from the database (a reconnecting client sends
Last-Event-ID), then sends what the hub offers, and reads from the database again whenever it
fell behind.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from cloud.core.errors import NotFoundError
from cloud.db.repositories import footfall as repo
from cloud.db.repositories import footfall_stream as stream_repo
from cloud.db.repositories.footfall_stream import StreamEvent
from cloud.footfall.hub import FootfallHub, HubUnavailableError

log = logging.getLogger(__name__)
_MAX_ID_DIGITS = 18  # a Last-Event-ID longer than this is no bigint id: start from now
_PAGE = 500


def _start(pool: ConnectionPool, store_id: str, last_event_id: str | None) -> int | None:
    with pool.connection() as conn:
        if repo.store_timezone(conn, store_id) is None:
            raise NotFoundError(f"store '{store_id}' does not exist")
        resume = (last_event_id or "").strip()
        if resume.isascii() and resume.isdigit() and len(resume) <= _MAX_ID_DIGITS:
            return int(resume)
        return None


async def open_stream(pool: ConnectionPool, store_id: str, last_event_id: str | None) -> int | None:
    """Check the store and return the event id to resume after (None: from now on)."""
    return await run_in_threadpool(_start, pool, store_id, last_event_id)


def hub_for(state: Any, dsn: str, pool: ConnectionPool) -> FootfallHub:
    """The hub of this app (one per process), made on first use."""
    hub: FootfallHub | None = getattr(state, "footfall_hub", None)
    if hub is None:
        hub = FootfallHub(dsn, pool)
        state.footfall_hub = hub
    return hub


def _between(pool: ConnectionPool, store_id: str, after: int, upto: int) -> list[StreamEvent]:
    with pool.connection() as conn:
        return stream_repo.store_events_between(conn, store_id, after, upto, _PAGE)


def _sse(event: StreamEvent) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(event.body), event="footfall", id=str(event.id))


async def _replay(
    pool: ConnectionPool, store_id: str, after: int, upto: int
) -> AsyncIterator[StreamEvent]:
    """The store's events in (after, upto] from the database."""
    while after < upto:
        page = await run_in_threadpool(_between, pool, store_id, after, upto)
        for event in page:
            yield event
        if len(page) < _PAGE:
            return
        after = page[-1].id


async def event_stream(
    hub: FootfallHub, pool: ConnectionPool, store_id: str, after: int | None
) -> AsyncIterator[ServerSentEvent]:
    """Yield `footfall` events with id > `after` (None: from now on) as they are committed, until
    disconnect; a hub that cannot reach the database ends the stream (the client reconnects
    with Last-Event-ID)."""
    try:
        async with hub.subscribe(store_id) as sub:
            yield ServerSentEvent(comment="connected", retry=2000)
            # "now" is the hub's watermark, not the newest id: one below may still commit
            upto = sub.horizon
            after = upto if after is None else after
            while True:
                async for event in _replay(pool, store_id, after, upto):
                    after = event.id
                    yield _sse(event)
                while not sub.lagging:
                    item = await sub.queue.get()
                    if item is not None and item.id > after:
                        after = item.id
                        yield _sse(item)
                while not sub.queue.empty():  # all <= the watermark: the replay covers them
                    sub.queue.get_nowait()
                sub.lagging = False  # from here the hub queues again; read what it dropped
                upto = hub.watermark
    except (HubUnavailableError, psycopg.OperationalError) as exc:
        log.warning("event stream lost its database connection", extra={"error": str(exc)})
