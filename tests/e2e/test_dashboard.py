"""The live dashboard in headless Chromium (Debian's `chromium` package, driven by Playwright):
it shows the store's numbers and updates from the event stream as windows are ingested."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import uvicorn

from cloud.core.security import Role, issue_token, key_id, mint_token
from cloud.core.settings import Settings
from cloud.db.repositories.auth import revoke_token
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.service import IngestService
from cloud.ingest.validate import Incoming, Limits
from cloud.simulator.envelopes import window_envelope

CHROMIUM = os.environ.get("MALLPULSE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
    *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
]
#: Set to a folder (e.g. docs/images) to keep the screenshot.
SCREENSHOT_DIR = os.environ.get("MALLPULSE_SCREENSHOT_DIR")


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


@pytest.fixture
def server(database_url: str, pg_pool: Any) -> Iterator[tuple[str, Settings]]:
    """The real app served by uvicorn on a loopback port."""
    from cloud.api.app import create_app

    settings = Settings(
        database_url=database_url,
        jwt_secret="e2e-secret-6419141c349984bebf288ebe8004b997d45210a7f05ca398",
        ratelimit_storage="memory",
        token_revocation_cache_s=0,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings, pool=pg_pool), log_config=None,
                            timeout_graceful_shutdown=1)  # fmt: skip
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(250):
        if srv.started:
            break
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", settings
    srv.should_exit = True
    thread.join(10)
    sock.close()


def test_dashboard_updates_live(
    server: tuple[str, Settings], pg_pool: Any, tmp_path: Path, browser: Any
) -> None:
    from playwright.sync_api import expect

    base, settings = server
    tag = uuid.uuid4().hex[:6]
    sid, dev = f"dash-{tag}", f"dashd-{tag}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="Dashboard", timezone="Europe/Berlin")
        create_device(conn, store_id=sid, device_id=dev)
    svc = IngestService(pg_pool, Limits())

    def ingest(seq: int, n_in: int, floor: int) -> None:
        end = datetime.now(UTC) - timedelta(seconds=60 - seq)
        env = window_envelope(store_id=sid, device_id=dev, sequence=seq,
                              start=end - timedelta(minutes=1), end=end,
                              lines={"main-door": (n_in, 2), "side-door": (3, 1)},
                              zones={"floor": floor, "cafe": 4},
                              queues={"checkout": (5, 150.0)})  # fmt: skip
        svc.ingest([Incoming(env.SerializeToString(), "grpc", device_id=dev)])

    ingest(1, 10, 20)
    token = issue_token(settings, subject="ann", role=Role.STORE_MANAGER, store_ids={sid})
    page = browser.new_page(viewport={"width": 1100, "height": 720})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/dashboard#store={sid}&token={token}")
    expect(page.locator("#occupancy")).to_have_text("24", timeout=10_000)
    expect(page.locator("#in-today")).to_have_text("13")
    expect(page.locator("#queue")).to_have_text("5")
    expect(page.locator("#devices")).to_have_text("0 / 1")
    expect(page.locator("#conn")).to_have_text("live", timeout=10_000)
    for seq, n_in, floor in ((2, 7, 26), (3, 12, 31), (4, 4, 18), (5, 9, 22)):
        ingest(seq, n_in, floor)
        expect(page.locator("#updates")).to_have_text(str(seq - 1), timeout=10_000)
    expect(page.locator("#in-today")).to_have_text(str(13 + 10 + 15 + 7 + 12))
    expect(page.locator("#occupancy")).to_have_text("26")
    assert page.locator("#chart polyline").get_attribute("points")
    expect(page.locator("#zones tbody tr")).to_have_count(2)
    shot = Path(SCREENSHOT_DIR or tmp_path) / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert shot.stat().st_size > 10_000 and not errors, errors


def test_dashboard_asks_for_a_token_without_one(server: tuple[str, Settings], browser: Any) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"{server[0]}/dashboard")
    expect(page.locator("#login")).to_be_visible()
    page.close()


def _store_with_a_window(pg_pool: Any) -> tuple[str, IngestService, str]:
    tag = uuid.uuid4().hex[:6]
    sid, dev = f"dsi-{tag}", f"dsid-{tag}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="Sign-in", timezone="UTC")
        create_device(conn, store_id=sid, device_id=dev)
    svc = IngestService(pg_pool, Limits())
    _ingest(svc, sid, dev, 1)
    return sid, svc, dev


def _ingest(svc: IngestService, sid: str, dev: str, seq: int) -> None:
    end = datetime.now(UTC) - timedelta(seconds=60 - seq)
    env = window_envelope(store_id=sid, device_id=dev, sequence=seq,
                          start=end - timedelta(minutes=1), end=end,
                          lines={"door": (5, 1)}, zones={"floor": 7}, queues={})  # fmt: skip
    svc.ingest([Incoming(env.SerializeToString(), "grpc", device_id=dev)])


def test_the_token_stays_out_of_local_storage_and_the_address_bar(
    server: tuple[str, Settings], pg_pool: Any, browser: Any
) -> None:
    from playwright.sync_api import expect

    base, settings = server
    sid, _, _ = _store_with_a_window(pg_pool)
    token = issue_token(settings, subject="ann", role=Role.STORE_MANAGER, store_ids={sid})
    page = browser.new_page()
    page.goto(f"{base}/dashboard")
    page.evaluate("localStorage.setItem('mp.token', 'left-by-an-old-version')")
    page.goto(f"{base}/dashboard?tab=1#store={sid}&token={token}")
    expect(page.locator("#occupancy")).to_have_text("7", timeout=10_000)
    assert page.evaluate("location.hash") == "" and token not in page.url
    assert page.evaluate("localStorage.getItem('mp.token')") is None
    assert token not in page.evaluate("JSON.stringify(localStorage)")
    assert page.evaluate("sessionStorage.getItem('mp.token')") == token  # this tab only
    page.reload()  # a reload in the same tab stays signed in
    expect(page.locator("#occupancy")).to_have_text("7", timeout=10_000)
    page.close()


def _expired(settings: Settings, sid: str) -> str:
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    now = int(time.time())
    claims = {"iss": settings.jwt_issuer, "sub": "ann", "role": "store_manager", "stores": [sid],
              "iat": now - 7200, "exp": now - 3600, "jti": uuid.uuid4().hex}  # fmt: skip
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(secret)})


def test_a_rejected_token_brings_back_the_sign_in_prompt(
    server: tuple[str, Settings], pg_pool: Any, browser: Any
) -> None:
    from playwright.sync_api import expect

    base, settings = server
    sid, svc, dev = _store_with_a_window(pg_pool)
    page = browser.new_page()
    page.goto(f"{base}/dashboard#store={sid}&token={_expired(settings, sid)}")
    expect(page.locator("#login")).to_be_visible(timeout=10_000)
    expect(page.locator("#login-msg")).to_contain_text("expired")
    first = mint_token(settings, subject="ann", role=Role.STORE_MANAGER, store_ids={sid})
    page.fill("#f-token", first.token)
    page.click("#login button")
    expect(page.locator("#occupancy")).to_have_text("7", timeout=10_000)
    expect(page.locator("#conn")).to_have_text("live", timeout=10_000)
    expect(page.locator("#login")).to_be_hidden()
    with pg_pool.connection() as conn:  # signed out mid-session: the next call gets 401
        revoke_token(conn, jti=first.jti, keep_for=timedelta(hours=1))
    _ingest(svc, sid, dev, 2)
    expect(page.locator("#login")).to_be_visible(timeout=10_000)
    expect(page.locator("#login-msg")).to_contain_text("revoked")
    page.fill("#f-token", issue_token(settings, subject="ann", role=Role.STORE_MANAGER,
                                      store_ids={sid}))  # fmt: skip
    page.click("#login button")
    expect(page.locator("#in-today")).to_have_text("10", timeout=10_000)
    expect(page.locator("#login")).to_be_hidden()
    page.close()
