"""`mallpulse demo` end to end, on the test machine's PostgreSQL and Mosquitto: footfall from the
replayed video and the simulator reaches the live endpoint and the event stream, the CRM answers
with the seeded data, the dashboard's numbers change, and SIGINT stops every process it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from mallpulse.demo.services import free_port

READY_LINE = "[7/8] running"


@dataclass
class RunningDemo:
    """The demo process and what it printed."""

    process: subprocess.Popen[str]
    api: str
    tokens: dict[str, str]
    output: Path

    def text(self) -> str:
        """Everything the demo printed so far."""
        return self.output.read_text(errors="replace")

    def auth(self, role: str) -> dict[str, str]:
        """Bearer header for one of the demo's roles."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def _wait_for(what: str, check: Callable[[], bool], timeout_s: float, demo: RunningDemo) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if demo.process.poll() is not None:
            pytest.fail(
                f"demo exited ({demo.process.returncode}) waiting for {what}:\n{demo.text()}"
            )
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{demo.text()[-3000:]}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, mqtt_broker: tuple[str, int]) -> Iterator[Any]:
    """The demo running on a fresh database and a unique topic prefix."""
    from tests.fixtures.services import _create_database, _drop_database

    url = _create_database(migrate=False)
    data = tmp_path_factory.mktemp("demo")
    port = free_port()
    out = data / "demo.out"
    argv = [
        sys.executable, "-m", "mallpulse", "demo", "--data-dir", str(data / "run"),
        "--database-url", url, "--mqtt", f"{mqtt_broker[0]}:{mqtt_broker[1]}",
        "--api-port", str(port), "--topic-prefix", f"mptest/{uuid.uuid4().hex[:10]}/mallpulse/v1",
        "--customers", "30", "--stores", "2", "--window-s", "5",
    ]  # fmt: skip
    with out.open("w") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, text=True)
    running = RunningDemo(proc, f"http://127.0.0.1:{port}", {}, out)
    try:
        _wait_for("the demo to start", lambda: READY_LINE in running.text(), 180, running)
        running.tokens = json.loads((data / "run" / "access.json").read_text())
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        _drop_database(url)


def test_video_footfall_reaches_the_live_endpoint(demo: RunningDemo) -> None:
    live: dict[str, Any] = {}

    def counted() -> bool:
        res = httpx.get(f"{demo.api}/v1/stores/demo-001/footfall/live",
                        headers=demo.auth("store_manager"), timeout=5)  # fmt: skip
        assert res.status_code == 200, res.text
        live.update(res.json())
        return bool(live["in_today"] + live["out_today"] > 0)

    _wait_for("in/out counts from the replayed video", counted, 120, demo)
    assert live["devices_online"] == 1
    assert [e["line_id"] for e in live["entrances"]] == ["door"]


def test_simulated_stores_reach_the_chain_view(demo: RunningDemo) -> None:
    seen: set[str] = set()

    def simulated() -> bool:
        res = httpx.get(f"{demo.api}/v1/chain/live", headers=demo.auth("hq_marketer"), timeout=5)
        assert res.status_code == 200, res.text
        body = res.json()
        stores = body["stores"] if isinstance(body, dict) else body
        seen.update(s["store_id"] for s in stores if s.get("devices_online", 0) > 0)
        return {"demo-sim-001", "demo-sim-002"} <= seen

    _wait_for("the simulated stores online", simulated, 90, demo)


def test_event_stream_pushes_windows(demo: RunningDemo) -> None:
    url = f"{demo.api}/v1/stores/demo-001/footfall/stream"
    with httpx.stream("GET", url, headers=demo.auth("store_manager"), timeout=60) as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        for line in res.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                assert event
                break


def test_crm_answers_with_seeded_customers(demo: RunningDemo) -> None:
    res = httpx.get(f"{demo.api}/v1/customers", headers=demo.auth("hq_marketer"), timeout=10)
    assert res.status_code == 200, res.text
    body = res.json()
    items = body["items"] if isinstance(body, dict) else body
    assert len(items) > 0
    denied = httpx.get(f"{demo.api}/v1/customers", headers=demo.auth("store_manager"), timeout=10)
    assert denied.status_code == 403


def test_dashboard_shows_live_numbers_that_change(demo: RunningDemo) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.test_dashboard import CHROMIUM, FLAGS, SCREENSHOT_DIR

    token = demo.tokens["store_manager"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(f"{demo.api}/dashboard#store=demo-001&token={token}")
        # locator assertions, not wait_for_function: the page's CSP forbids evaluating strings
        in_today = page.locator("#in-today")
        expect(in_today).to_have_text(re.compile(r"^[0-9]+$"), timeout=30_000)
        first = in_today.inner_text()
        expect(in_today).not_to_have_text(first, timeout=90_000)
        later = page.inner_text("#in-today")
        updates = page.inner_text("#updates")
        if SCREENSHOT_DIR:
            page.set_viewport_size({"width": 1100, "height": 640})
            page.screenshot(path=str(Path(SCREENSHOT_DIR) / "demo-dashboard.png"))
        browser.close()
    assert int(later) > int(first)
    assert int(updates) >= 1


def test_sigint_stops_every_process(demo: RunningDemo) -> None:
    pids = [int(p) for p in re.findall(r"started \w+ pid (\d+)", demo.text())]
    assert len(pids) == 5, demo.text()
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(60) == 0, demo.text()
    assert "stopped." in demo.text()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
