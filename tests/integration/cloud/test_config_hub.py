"""The config-watch LISTEN hub on real PostgreSQL: one connection for all watches, wake-ups by
device, every watch woken after a reconnect, the connection closed with the last watch."""

from __future__ import annotations

import contextlib
import queue
import threading
import uuid
from typing import Any

import psycopg
from prometheus_client import REGISTRY

from cloud.db.repositories.devices_config import CONFIG_CHANNEL
from cloud.ingest.config_hub import HUB_APPLICATION, ConfigWatchHub


def _hub_pids(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database() AND query ILIKE 'LISTEN%%'",
            (HUB_APPLICATION,),
        ).fetchall()
    return [int(r[0]) for r in rows]


def _wait_for(check: Any, what: str) -> None:
    done = threading.Event()
    for _ in range(300):
        if check():
            return
        done.wait(0.05)
    raise AssertionError(f"never happened: {what}")


def _drain(wakes: list[queue.Queue[None]]) -> None:
    for wake in wakes:
        with contextlib.suppress(queue.Empty):
            wake.get_nowait()


def test_watches_share_one_connection_and_wake_by_device(settings: Any) -> None:
    url = settings.database_url
    dev_a, dev_b = f"hub-a-{uuid.uuid4().hex[:6]}", f"hub-b-{uuid.uuid4().hex[:6]}"
    hub = ConfigWatchHub(url)
    labels = {"channel": CONFIG_CHANNEL}
    before = REGISTRY.get_sample_value("mallpulse_listen_reconnects_total", labels) or 0
    with contextlib.ExitStack() as stack:
        a = [stack.enter_context(hub.subscribe(dev_a)) for _ in range(5)]
        b = [stack.enter_context(hub.subscribe(dev_b)) for _ in range(5)]
        _wait_for(lambda: len(_hub_pids(url)) == 1, "the hub listens")
        assert hub.watchers == 10
        for wake in a + b:  # the wake-up of the first connect
            wake.get(timeout=10)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (CONFIG_CHANNEL, dev_a))
        for wake in a:
            wake.get(timeout=10)
        assert all(w.empty() for w in b)
        with psycopg.connect(url, autocommit=True) as conn:  # lose the LISTEN connection
            conn.execute("SELECT pg_terminate_backend(%s)", (_hub_pids(url)[0],))
        for wake in a + b:  # reconnected: everyone looks again (a publish may have been missed)
            wake.get(timeout=15)
        assert len(_hub_pids(url)) == 1
        _drain(a + b)
    assert (REGISTRY.get_sample_value("mallpulse_listen_reconnects_total", labels) or 0) > before
    _wait_for(lambda: not _hub_pids(url), "the hub closes with its last watch")
    assert hub.watchers == 0
