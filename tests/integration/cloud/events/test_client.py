"""The Python client against the real API: batching, retry with backoff through 503s and a
dropped connection, flush on close, and a refused batch dropped and counted (not retried)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cloud.crm.events import repository as repo
from cloud.crm.events.client import EventsClient
from cloud.crm.events.repository import Source
from tests.integration.cloud.events.live import serve

MakeSource = Callable[..., tuple[Source, str]]


@pytest.fixture(scope="module")
def api(database_url: str, pg_pool: Any) -> Iterator[str]:
    """Base URL of the real API on a loopback port."""
    yield from serve(database_url, pg_pool)


class Flaky(httpx.BaseTransport):
    """A real HTTP transport that first fails the way networks and servers do."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        self.real = httpx.HTTPTransport()
        self.requests: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(len(request.content))
        if self.failures:
            kind = self.failures.pop(0)
            if kind == "drop":
                raise httpx.ConnectError("connection reset", request=request)
            return httpx.Response(int(kind), text="try later")
        return self.real.handle_request(request)


def _stored(pg_pool: Any, source_id: str) -> list[repo.Event]:
    with pg_pool.connection() as conn:
        return repo.events_of(conn, source_id=source_id)


def test_batches_retries_and_flushes(api: str, make_source: MakeSource, pg_pool: Any) -> None:
    source, key = make_source()
    flaky = Flaky(["503", "drop", "429"])
    client = EventsClient(api, write_key=key, flush_at=5, flush_interval_s=60, transport=flaky,
                          max_backoff_s=0.2)  # fmt: skip
    for i in range(7):
        client.track("Viewed", anonymous_id="a1", properties={"i": i})
    client.close()  # what atexit does: sends the last, partial batch
    assert client.stats == {"sent": 7, "dropped": 0, "retries": 3}
    assert len(flaky.requests) == 2 + 3  # two batches (5 + 2), the first tried four times
    assert sorted(e.properties["i"] for e in _stored(pg_pool, source.id)) == list(range(7))


def test_a_refused_batch_is_dropped_not_retried(api: str, make_source: MakeSource) -> None:
    _, key = make_source()
    flaky = Flaky([])
    client = EventsClient(api, write_key="mpwk_wrong", flush_at=1, transport=flaky)
    client.track("Viewed", anonymous_id="a1")
    client.flush()
    assert client.stats["dropped"] == 1 and len(flaky.requests) == 1
    client.close()
    good = EventsClient(api, write_key=key, flush_at=10)
    good.identify(user_id="u-1", traits={"plan": "gold"})
    good.flush()
    assert good.stats["sent"] == 1
    good.close()
