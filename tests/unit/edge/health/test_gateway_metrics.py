"""Gateway /metrics: outbox depth and age, frames and detector latency per camera, uplink counts."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from edge.agent import Agent
from edge.config import EdgeConfig
from edge.health.metrics import CameraSample, GatewayCollector
from edge.outbox import OutboxStats
from edge.uplink.base import UplinkStats
from tests.unit.edge.test_agent import Broken, Pipeline, Ticker, config, wait_until


def _samples(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("camera", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_agent_serves_metrics_on_the_configured_port(tmp_path: Path) -> None:
    doc = config(tmp_path).model_dump(mode="json")
    doc["health"] = {"metrics_port": 0}  # any free port
    agent = Agent(
        EdgeConfig.model_validate(doc),
        pipeline_factory=lambda cfg, cam: Pipeline(cam),
        source_factory=lambda cam: Broken() if cam.id == "bad" else Ticker(),
        drain_timeout_s=0.0,
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: agent.metrics_server is not None and agent.workers[0].frames >= 20)
        assert agent.metrics_server is not None
        url = f"http://127.0.0.1:{agent.metrics_server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as res:
            got = _samples(res.read().decode())
    finally:
        stop.set()
        thread.join(10)
    assert got[("mallpulse_gateway_frames_total", "good")] >= 20
    assert got[("mallpulse_gateway_frames_total", "bad")] == 0
    assert got[("mallpulse_gateway_detector_latency_seconds", "good")] == 0.0045
    assert got[("mallpulse_gateway_camera_connected", "good")] == 1.0
    assert got[("mallpulse_gateway_camera_connected", "bad")] == 0.0
    assert got[("mallpulse_gateway_outbox_depth", "")] >= 2  # the "w" windows of 20 frames
    assert ("mallpulse_gateway_outbox_oldest_age_seconds", "") in got
    assert agent.metrics_server is not None  # stopped with the agent: the port is closed
    assert agent.metrics_server.socket.fileno() == -1


def test_uplink_counters_and_an_unreadable_outbox() -> None:
    stats = UplinkStats(sent=5, acked=4, connects=3)

    def broken_outbox() -> OutboxStats:
        raise OSError("disk gone")

    registry = CollectorRegistry()
    registry.register(
        GatewayCollector(
            outbox=broken_outbox,
            cameras=lambda: [CameraSample("c1", 7, 12.0, True)],
            uplink=lambda: stats,
        )
    )

    def value(name: str, camera: str | None = None) -> float | None:
        return registry.get_sample_value(name, {"camera": camera} if camera else {})

    assert value("mallpulse_gateway_uplink_sent_total") == 5
    assert value("mallpulse_gateway_uplink_acked_total") == 4
    assert value("mallpulse_gateway_uplink_reconnects_total") == 2  # connects after the first
    assert value("mallpulse_gateway_frames_total", "c1") == 7
    assert value("mallpulse_gateway_detector_latency_seconds", "c1") == 0.012
    assert value("mallpulse_gateway_outbox_depth") is None  # left out, the scrape still works
