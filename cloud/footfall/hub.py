"""One PostgreSQL LISTEN connection per API process, fanned out to every SSE subscriber.

The hub runs while it has subscribers. It reads every new event once (`read_committed`, which
never passes an id that may still commit) and offers it to the subscribers of its store, each
through its own bounded queue. A subscriber whose queue is full is marked lagging and catches
up from the database itself, so a slow client neither blocks the others nor loses events. A
lost LISTEN connection is opened again; the watermark is kept, so the read after the reconnect
catches up on whatever was committed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from cloud.core.metrics import LISTEN_OVERFLOWS, LISTEN_RECONNECTS, LISTEN_SUBSCRIBERS
from cloud.db.repositories.footfall_stream import StreamEvent
from cloud.db.repositories.telemetry import NOTIFY_CHANNEL
from cloud.footfall.watermark import Hold, Read, read_committed, start_position

log = logging.getLogger(__name__)
_POLL_S = 5.0  # also read without a notification this often (a missed wake-up costs <= 5 s)
_RETRY_S = (0.5, 1.0, 2.0, 5.0)
_PAGE = 1000
HUB_APPLICATION = "mallpulse-footfall-hub"  # its LISTEN connection, as pg_stat_activity shows
_READY_S = 10.0  # a stream whose hub cannot listen within this ends (the client comes back)


class HubUnavailableError(Exception):
    """The hub could not open its LISTEN connection in time."""


@dataclass(eq=False)
class Subscriber:
    """One stream's view of the hub: events of its store with id > `horizon` arrive in `queue`."""

    store_id: str
    horizon: int
    limit: int
    queue: asyncio.Queue[StreamEvent | None] = field(default_factory=asyncio.Queue)
    lagging: bool = False

    def offer(self, event: StreamEvent) -> None:
        """Queue the event, or mark the subscriber lagging when its queue is full."""
        if self.lagging:
            return
        if event.body is None or self.queue.qsize() >= self.limit:
            self.lagging = True  # it reads what it missed from the database
            LISTEN_OVERFLOWS.labels(NOTIFY_CHANNEL).inc()
            self.queue.put_nowait(None)  # wake it even when it waits on an empty queue
            return
        self.queue.put_nowait(event)


class FootfallHub:
    """Fans one LISTEN connection out to the SSE streams of this process."""

    def __init__(self, dsn: str, pool: ConnectionPool, *, queue_limit: int = 256) -> None:
        self.dsn = dsn
        self.pool = pool
        self.queue_limit = queue_limit
        self.watermark = -1  # every event with id <= watermark has been offered (-1: not yet)
        self._hold: Hold | None = None
        self._subs: dict[str, set[Subscriber]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._joining = 0  # subscribers waiting for the hub to be ready

    @property
    def subscribers(self) -> int:
        """How many streams are subscribed now."""
        return sum(len(s) for s in self._subs.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, store_id: str) -> AsyncIterator[Subscriber]:
        """Subscribe to a store's events; the hub starts with its first subscriber."""
        if self._task is None or self._task.done():
            self.watermark, self._hold = -1, None  # start near the newest id, not where it was
            self._ready = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._joining += 1
        try:
            await asyncio.wait_for(self._ready.wait(), _READY_S)
        except BaseException as exc:  # timed out, or the client left while joining
            self._joining -= 1
            self._stop_if_idle()
            if isinstance(exc, TimeoutError):
                raise HubUnavailableError("the live event hub cannot reach the database") from exc
            raise
        self._joining -= 1
        sub = Subscriber(store_id, self.watermark, self.queue_limit)  # no await in between
        self._subs.setdefault(store_id, set()).add(sub)
        LISTEN_SUBSCRIBERS.labels(NOTIFY_CHANNEL).inc()
        try:
            yield sub
        finally:
            LISTEN_SUBSCRIBERS.labels(NOTIFY_CHANNEL).dec()
            self._subs[store_id].discard(sub)
            if not self._subs[store_id]:
                del self._subs[store_id]
            self._stop_if_idle()

    def _stop_if_idle(self) -> None:
        """The last subscriber left (or gave up joining): close the LISTEN connection."""
        if not self._subs and not self._joining and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, application_name=HUB_APPLICATION
                ) as c:
                    await c.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    attempt = 0
                    await self._read()  # catch up on what was committed while not listening
                    self._ready.set()
                    while True:
                        async for _note in c.notifies(timeout=_POLL_S, stop_after=1):
                            pass
                        await self._read()
            except (psycopg.Error, PoolTimeout, OSError) as exc:
                LISTEN_RECONNECTS.labels(NOTIFY_CHANNEL).inc()
                log.warning("footfall hub lost its database connection", extra={"error": str(exc)})
                await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
                attempt += 1

    async def _read(self) -> None:
        """Read and offer everything passable now (in pages)."""
        while True:
            stores = list(self._subs)
            read = await asyncio.to_thread(self._fetch, stores)
            # No await from here on: a subscriber joining sees the watermark of what was offered.
            for event in read.events:
                for sub in self._subs.get(event.store_id, ()):
                    sub.offer(event)  # a body not read (store joined meanwhile): it catches up
            self.watermark, self._hold = read.watermark, read.hold
            if len(read.events) < _PAGE:
                return

    def _fetch(self, stores: list[str]) -> Read:
        with self.pool.connection() as conn:
            after = self.watermark if self.watermark >= 0 else start_position(conn)
            return read_committed(conn, after, stores, self._hold, _PAGE)
