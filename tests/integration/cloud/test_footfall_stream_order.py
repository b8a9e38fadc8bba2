"""SSE resume never skips an event whose id was handed out first but committed last."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from typing import Any

import psycopg
import pytest

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_store
from cloud.db.repositories.telemetry import publish_events
from tests.integration.cloud.test_footfall_stream import _events, live_server

__all__ = ["live_server"]


def _publish(conn: psycopg.Connection[Any], store_id: str, n: int) -> int:
    """Insert one live event in the connection's open transaction; returns its id."""
    publish_events(conn, {store_id: {"n": n}})
    row = conn.execute(
        "SELECT max(id) FROM footfall_events WHERE store_id = %s", (store_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _next_event(out: queue.Queue[Any], timeout: float) -> dict[str, str]:
    while True:
        kind, block = out.get(timeout=timeout)
        if kind == "event":
            return dict(block)
        assert kind in ("status", "comment"), (kind, block)


@pytest.mark.parametrize("resume", [True, False], ids=["last-event-id", "live"])
def test_lower_id_committed_after_higher_is_delivered(
    live_server: str, pg_pool: Any, token_for: Any, settings: Settings, resume: bool
) -> None:
    sid = f"sse-order-{uuid.uuid4().hex[:8]}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="SSE order", timezone="UTC")
        marker = _publish(conn, sid, 0)  # committed: the reader resumes after it
    url = f"{live_server}/v1/stores/{sid}/footfall/stream"
    headers = token_for(Role.STORE_MANAGER, {sid})
    out: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def _open() -> None:
        hdrs = {**headers, "Last-Event-ID": str(marker)} if resume else headers
        threading.Thread(target=_events, args=(url, hdrs, out, stop), daemon=True).start()
        assert out.get(timeout=10) == ("status", 200)
        assert out.get(timeout=10)[0] == "comment"  # connected

    if not resume:
        _open()
    with (
        psycopg.connect(settings.database_url) as slow,
        psycopg.connect(settings.database_url) as fast,
    ):
        low = _publish(slow, sid, 1)  # id handed out, transaction still open
        high = _publish(fast, sid, 2)
        fast.commit()
        assert high > low > marker
        if resume:
            _open()
        # Give the server every chance to read past the open id (the old stream did, here).
        try:
            early = _next_event(out, timeout=3)
        except queue.Empty:
            early = None
        assert early is None, f"event {early} sent while id {low} could still commit"
        slow.commit()
    got = [_next_event(out, timeout=15), _next_event(out, timeout=15)]
    stop.set()
    assert [int(e["id"]) for e in got] == [low, high]
    assert [json.loads(e["data"])["n"] for e in got] == [1, 2]
