"""The browser SDK in headless Chromium on a shop page of another origin: nothing is tracked
or stored before consent; calls are batched; a failed send is retried with backoff; what is
queued when the page goes away leaves with sendBeacon."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from cloud.crm.events import repository as repo
from cloud.crm.events import sources
from tests.integration.cloud.events.live import serve

CHROMIUM = os.environ.get("MALLPULSE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}; `apt-get install -y chromium`")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def api(database_url: str, pg_pool: Any) -> Iterator[str]:
    """The real API on a loopback port (another origin than the shop)."""
    yield from serve(database_url, pg_pool)


class _ShopPage(BaseHTTPRequestHandler):
    """A shop's page: loads the SDK from the API named in ?api= (another origin)."""

    def do_GET(self) -> None:
        api = parse_qs(urlparse(self.path).query).get("api", [""])[0]
        body = (f'<html><head><title>Shop</title><script src="{api}/v1/sdk/mallpulse.js">'
                "</script></head><body>shop</body></html>").encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    """A shop's web server on another loopback port: another origin than the API."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _ShopPage)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/shop"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def source(pg_pool: Any) -> tuple[str, str]:
    """(id, write key) of a browser source that requires consent."""
    with pg_pool.connection() as conn:
        made, key = sources.create_source(
            conn, source_id=f"web-{uuid.uuid4().hex[:8]}", name="Web", consent_required=True
        )
    return made.id, key


def _shop(browser: Any, api: str, shop: str, key: str, **opts: Any) -> tuple[Any, list[str]]:
    """A page on the shop's origin that loaded the SDK from the API; and its collect posts."""
    page = browser.new_page()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.url.endswith("/collect") else None)
    page.goto(f"{shop}?api={api}")
    page.wait_for_function("typeof mallpulse !== 'undefined'")
    js_opts = {"writeKey": key, "apiHost": api, "flushInterval": 600000, **opts}
    page.evaluate("o => { window.mp = mallpulse.load(o); }", js_opts)
    return page, posts


def _stored(pg_pool: Any, source_id: str, n: int) -> list[repo.Event]:
    deadline = time.monotonic() + 15  # a beacon is sent after the page is gone
    while True:
        with pg_pool.connection() as conn:
            rows = repo.events_of(conn, source_id=source_id)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_nothing_before_consent_then_batched(
    browser: Any, api: str, shop: str, source: tuple[str, str], pg_pool: Any
) -> None:
    sid, key = source
    page, posts = _shop(browser, api, shop, key, flushAt=3)
    assert page.evaluate("mp.track('Viewed', {sku: 'A'})") is False
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('mallpulse'))") == []
    page.evaluate("mp.flush()")
    assert posts == []
    page.evaluate("mp.consent(true)")
    page.evaluate("mp.page('Home'); mp.track('Viewed', {sku: 'A'}); mp.track('Added', {sku: 'A'})")
    page.wait_for_function("mp.stats.sent === 3")
    assert len(posts) == 1  # one batch of three
    rows = _stored(pg_pool, sid, 3)
    assert sorted(r.type for r in rows) == ["page", "track", "track"]
    assert len({r.anonymous_id for r in rows}) == 1
    page.evaluate("mp.consent(false)")
    assert page.evaluate("mp.track('After', {})") is False
    page.close()


def test_a_failed_send_is_retried(
    browser: Any, api: str, shop: str, source: tuple[str, str], pg_pool: Any
) -> None:
    sid, key = source
    page, posts = _shop(browser, api, shop, key, flushAt=1, backoffMs=50)
    failures = {"left": 2}

    def flaky(route: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            route.fulfill(status=503, body="busy", headers={"Access-Control-Allow-Origin": "*"})
        else:
            route.continue_()

    page.route("**/v1/events/collect", flaky)
    page.evaluate("mp.consent(true); mp.track('Viewed', {})")
    page.wait_for_function("mp.stats.sent === 1", timeout=20000)
    assert page.evaluate("mp.stats.retries") == 2 and len(posts) == 3
    assert [r.event for r in _stored(pg_pool, sid, 1)] == ["Viewed"]
    page.close()


def test_the_queue_leaves_with_a_beacon(
    browser: Any, api: str, shop: str, source: tuple[str, str], pg_pool: Any
) -> None:
    sid, key = source
    page, _ = _shop(browser, api, shop, key, flushAt=100)
    page.evaluate("mp.consent(true); mp.track('A', {}); mp.track('B', {})")
    assert page.evaluate("mp.queue.length") == 2 and page.evaluate("mp.stats.sent") == 0
    page.goto("about:blank")  # pagehide: the SDK hands the queue to sendBeacon
    assert sorted(r.event or "" for r in _stored(pg_pool, sid, 2)) == ["A", "B"]
    page.close()
