"""Server-sent events of a store: PostgreSQL LISTEN wakes the stream, the events table feeds it.

Ingest writes one footfall_events row per store per committed batch and NOTIFYs inside the same
transaction, so a notification always refers to committed data. Each stream LISTENs on its
own connection, treats a notification as a wake-up, and reads every event newer than the last
one it sent; a reconnecting client sends Last-Event-ID and gets what it missed.
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
from cloud.db.repositories.telemetry import NOTIFY_CHANNEL

log = logging.getLogger(__name__)
_MAX_ID_DIGITS = 18  # a Last-Event-ID longer than this is no bigint id: start from now
_POLL_S = 5.0  # also look without a notification this often (a missed wake-up costs <= 5 s)


def _start(pool: ConnectionPool, store_id: str, last_event_id: str | None) -> int:
    with pool.connection() as conn:
        if repo.store_timezone(conn, store_id) is None:
            raise NotFoundError(f"store '{store_id}' does not exist")
        resume = (last_event_id or "").strip()
        if resume.isascii() and resume.isdigit() and len(resume) <= _MAX_ID_DIGITS:
            return int(resume)
        return repo.last_event_id(conn, store_id)


async def open_stream(pool: ConnectionPool, store_id: str, last_event_id: str | None) -> int:
    """Check the store and return the event id to resume after."""
    return await run_in_threadpool(_start, pool, store_id, last_event_id)


def _fetch(pool: ConnectionPool, store_id: str, after: int) -> list[tuple[int, Any]]:
    with pool.connection() as conn:
        return repo.events_after(conn, store_id, after)


async def event_stream(
    dsn: str, pool: ConnectionPool, store_id: str, after: int
) -> AsyncIterator[ServerSentEvent]:
    """Yield `footfall` events with id > `after` as they are committed, until disconnect; a lost
    database connection ends the stream (the client reconnects with Last-Event-ID)."""
    try:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            yield ServerSentEvent(comment="connected", retry=2000)
            while True:
                for event_id, body in await run_in_threadpool(_fetch, pool, store_id, after):
                    after = event_id
                    yield ServerSentEvent(data=json.dumps(body), event="footfall", id=str(event_id))
                async for note in conn.notifies(timeout=_POLL_S):
                    if note.payload.partition(":")[0] == store_id:
                        break
    except psycopg.OperationalError as exc:
        log.warning("event stream lost its database connection", extra={"error": str(exc)})
