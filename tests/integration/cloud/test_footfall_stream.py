"""Server-sent events over a real HTTP server: pushed on ingest, replayed after Last-Event-ID."""

from __future__ import annotations

import json
import queue
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.service import IngestService
from cloud.ingest.validate import Incoming, Limits
from cloud.simulator.envelopes import window_envelope


@pytest.fixture
def live_server(settings: Settings, pg_pool: Any) -> Iterator[str]:
    """The real app served by uvicorn on a loopback port; yields its base URL."""
    from cloud.api.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, pool=pg_pool),
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.02)
    yield base
    server.should_exit = True
    thread.join(10)
    sock.close()


def _events(
    url: str, headers: dict[str, str], out: queue.Queue[Any], stop: threading.Event
) -> None:
    """Read SSE blocks into `out` until `stop` is set and the next block arrives."""
    try:
        _read(url, headers, out, stop)
    except httpx.HTTPError as exc:
        out.put(("closed", exc))


def _read(url: str, headers: dict[str, str], out: queue.Queue[Any], stop: threading.Event) -> None:
    with httpx.Client(timeout=30) as http, http.stream("GET", url, headers=headers) as res:
        out.put(("status", res.status_code))
        block: dict[str, str] = {}
        for line in res.iter_lines():
            if line == "":
                if "data" in block:
                    out.put(("event", block))
                elif block:
                    out.put(("comment", block))
                block = {}
                if stop.is_set():
                    return
                continue
            key, _, value = line.partition(":")
            block[key or "comment"] = value.removeprefix(" ")


def test_stream_pushes_and_replays(
    live_server: str, pg_pool: Any, token_for: Any, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:8]
    sid, dev = f"sse-{tag}", f"ssed-{tag}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="SSE", timezone="UTC")
        create_device(conn, store_id=sid, device_id=dev)
    svc = IngestService(pg_pool, Limits())

    def ingest(seq: int, n_in: int) -> None:
        end = datetime.now(UTC)
        env = window_envelope(store_id=sid, device_id=dev, sequence=seq,
                              start=end - timedelta(minutes=1), end=end,
                              lines={"door": (n_in, 0)})  # fmt: skip
        svc.ingest([Incoming(env.SerializeToString(), "grpc", device_id=dev)])

    url = f"{live_server}/v1/stores/{sid}/footfall/stream"
    headers = token_for(Role.STORE_MANAGER, {sid})
    out: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    reader = threading.Thread(target=_events, args=(url, headers, out, stop), daemon=True)
    reader.start()
    assert out.get(timeout=10) == ("status", 200)
    assert out.get(timeout=10)[0] == "comment"  # connected
    ingest(1, 4)
    kind, first = out.get(timeout=10)
    assert kind == "event" and first["event"] == "footfall"
    assert json.loads(first["data"])["in"] == 4
    stop.set()
    ingest(2, 5)  # also ends the first reader
    reader.join(10)
    ingest(3, 6)  # while disconnected
    replay: queue.Queue[Any] = queue.Queue()
    stop_again = threading.Event()
    again = threading.Thread(
        target=_events,
        args=(url, {**headers, "Last-Event-ID": first["id"]}, replay, stop_again),
        daemon=True,
    )
    again.start()
    assert replay.get(timeout=10) == ("status", 200)
    got = [replay.get(timeout=10) for _ in range(3)]
    ins = [json.loads(b["data"])["in"] for kind, b in got if kind == "event"]
    assert ins == [5, 6]
    ids = [int(b["id"]) for kind, b in got if kind == "event"]
    assert ids == sorted(ids) and ids[0] > int(first["id"])
    stop_again.set()
    ingest(4, 1)
    again.join(10)


def test_stream_of_unknown_store_is_404(live_server: str, token_for: Any) -> None:
    res = httpx.get(f"{live_server}/v1/stores/nope-{uuid.uuid4().hex[:6]}/footfall/stream",
                    headers=token_for(Role.ADMIN), timeout=10)  # fmt: skip
    assert res.status_code == 404 and res.json()["type"].endswith("/not-found")
