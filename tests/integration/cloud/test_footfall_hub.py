"""The footfall LISTEN hub on real PostgreSQL: one connection for many streams, slow streams and
lost connections catch up, and a rolled-back id is not waited for behind later writers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from prometheus_client import REGISTRY

from cloud.db.repositories.devices import create_store
from cloud.db.repositories.telemetry import NOTIFY_CHANNEL, publish_events
from cloud.footfall.hub import HUB_APPLICATION, FootfallHub
from cloud.footfall.stream import event_stream
from cloud.footfall.watermark import read_committed

Conn = psycopg.Connection[Any]


def _store(pg_pool: Any) -> str:
    sid = f"hub-{uuid.uuid4().hex[:8]}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="Hub", timezone="UTC")
    return sid


def _publish(conn: Conn, store_id: str, n: int) -> int:
    publish_events(conn, {store_id: {"n": n}})
    row = conn.execute("SELECT max(id) FROM footfall_events WHERE store_id = %s", (store_id,))
    got = row.fetchone()
    assert got is not None
    return int(got[0])


def _publish_committed(pg_pool: Any, store_id: str, n: int) -> int:
    with pg_pool.connection() as conn:
        return _publish(conn, store_id, n)


async def _take(stream: AsyncIterator[Any], count: int) -> list[int]:
    """The `n` of the next `count` footfall events (comments skipped)."""
    got: list[int] = []
    while len(got) < count:
        sse = await asyncio.wait_for(anext(stream), 15)
        if sse.event == "footfall":
            got.append(json.loads(sse.data)["n"])
    return got


def _hub_connections(settings: Any) -> int:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            (HUB_APPLICATION,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_many_streams_share_one_listen_connection(settings: Any, pg_pool: Any) -> None:
    sid = _store(pg_pool)

    async def main() -> tuple[int, list[list[int]], int]:
        hub = FootfallHub(settings.database_url, pg_pool)
        streams = [event_stream(hub, pg_pool, sid, None) for _ in range(20)]
        for s in streams:
            assert (await anext(s)).comment == "connected"
        listening = await asyncio.to_thread(_hub_connections, settings)
        await asyncio.to_thread(_publish_committed, pg_pool, sid, 7)
        got = [await _take(s, 1) for s in streams]
        for s in streams:
            await s.aclose()  # type: ignore[attr-defined]
        return listening, got, hub.subscribers

    listening, got, left = asyncio.run(main())
    assert listening == 1
    assert got == [[7]] * 20
    assert left == 0


def test_slow_stream_catches_up_from_the_database(settings: Any, pg_pool: Any) -> None:
    sid = _store(pg_pool)
    before = REGISTRY.get_sample_value(
        "mallpulse_listen_overflows_total", {"channel": NOTIFY_CHANNEL}
    )

    async def main() -> list[int]:
        hub = FootfallHub(settings.database_url, pg_pool, queue_limit=2)
        stream = event_stream(hub, pg_pool, sid, None)
        assert (await anext(stream)).comment == "connected"
        for n in range(10):  # the stream reads nothing meanwhile: its queue overflows
            await asyncio.to_thread(_publish_committed, pg_pool, sid, n)
        while hub.watermark < await asyncio.to_thread(_newest, pg_pool):
            await asyncio.sleep(0.05)
        got = await _take(stream, 10)
        await stream.aclose()  # type: ignore[attr-defined]
        return got

    assert asyncio.run(main()) == list(range(10))
    after = REGISTRY.get_sample_value(
        "mallpulse_listen_overflows_total", {"channel": NOTIFY_CHANNEL}
    )
    assert (after or 0) > (before or 0)


def _newest(pg_pool: Any) -> int:
    with pg_pool.connection() as conn:
        row = conn.execute("SELECT max(id) FROM footfall_events").fetchone()
    return int(row[0]) if row and row[0] else 0


def _kill_hub(settings: Any) -> int:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            (HUB_APPLICATION,),
        ).fetchall()
    return len(rows)


def test_lost_listen_connection_reconnects_and_catches_up(settings: Any, pg_pool: Any) -> None:
    sid = _store(pg_pool)
    labels = {"channel": NOTIFY_CHANNEL}
    before = REGISTRY.get_sample_value("mallpulse_listen_reconnects_total", labels) or 0

    async def main() -> list[int]:
        hub = FootfallHub(settings.database_url, pg_pool)
        stream = event_stream(hub, pg_pool, sid, None)
        assert (await anext(stream)).comment == "connected"
        assert await asyncio.to_thread(_kill_hub, settings) == 1
        for n in range(3):  # committed while the hub has no LISTEN connection
            await asyncio.to_thread(_publish_committed, pg_pool, sid, n)
        got = await _take(stream, 3)
        await stream.aclose()  # type: ignore[attr-defined]
        return got

    assert asyncio.run(main()) == [0, 1, 2]
    assert (REGISTRY.get_sample_value("mallpulse_listen_reconnects_total", labels) or 0) > before


def test_rolled_back_gap_is_passed_while_later_writers_are_open(
    settings: Any, pg_pool: Any
) -> None:
    sid = _store(pg_pool)
    start = _publish_committed(pg_pool, sid, 0)
    url = settings.database_url
    with psycopg.connect(url) as doomed, psycopg.connect(url) as later:
        _publish(doomed, sid, 1)  # will roll back
        high = _publish_committed(pg_pool, sid, 2)
        with pg_pool.connection() as conn:
            first = read_committed(conn, start, [sid], None)
        assert first.events == [] and first.hold is not None  # the gap may still commit
        _publish(later, sid, 3)  # a writer that started after the gap was seen
        doomed.rollback()
        with pg_pool.connection() as conn:
            second = read_committed(conn, first.watermark, [sid], first.hold)
        assert [e.id for e in second.events] == [high]  # the consumer's rule would still wait
        later.rollback()
