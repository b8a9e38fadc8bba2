"""Prometheus metrics of the gateway, read from the agent's own state at scrape time.

Nothing is counted twice: the collector asks the outbox, the camera workers and the uplink for
the numbers they already keep (their health telemetry uses the same ones), so the hot paths get
no extra work. Frames per second per camera is `rate(mallpulse_gateway_frames_total[1m])`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraSample:
    """What one camera worker reports: frames processed since start, detector latency, link."""

    camera_id: str
    frames: int
    detector_latency_ms: float
    connected: bool


class GatewayCollector(Collector):
    """Outbox depth and oldest age, per-camera frames and detector latency, uplink counters."""

    def __init__(
        self,
        *,
        outbox: Callable[[], Any],
        cameras: Callable[[], Sequence[CameraSample]],
        uplink: Callable[[], Any],
    ) -> None:
        self._outbox = outbox
        self._cameras = cameras
        self._uplink = uplink

    def collect(self) -> Iterable[Metric]:
        """One sample of every gateway metric (a part that cannot be read is left out)."""
        yield from self._outbox_metrics()
        yield from self._camera_metrics()
        yield from self._uplink_metrics()

    def _outbox_metrics(self) -> Iterable[Metric]:
        try:
            stats = self._outbox()
        except Exception:  # an unreadable outbox must not fail the whole scrape
            log.warning("outbox stats unavailable for metrics", exc_info=True)
            return
        yield GaugeMetricFamily(
            "mallpulse_gateway_outbox_depth", "Envelopes waiting in the outbox.", stats.depth
        )
        yield GaugeMetricFamily(
            "mallpulse_gateway_outbox_oldest_age_seconds",
            "Age of the oldest envelope waiting in the outbox.",
            stats.oldest_age_s,
        )

    def _camera_metrics(self) -> Iterable[Metric]:
        frames = CounterMetricFamily(
            "mallpulse_gateway_frames", "Frames processed per camera.", labels=["camera"]
        )
        latency = GaugeMetricFamily(
            "mallpulse_gateway_detector_latency_seconds",
            "Detector latency per frame per camera (as the pipeline measures it).",
            labels=["camera"],
        )
        connected = GaugeMetricFamily(
            "mallpulse_gateway_camera_connected", "1 while the camera delivers.", labels=["camera"]
        )
        for cam in self._cameras():
            frames.add_metric([cam.camera_id], cam.frames)
            latency.add_metric([cam.camera_id], cam.detector_latency_ms / 1000.0)
            connected.add_metric([cam.camera_id], 1.0 if cam.connected else 0.0)
        yield from (frames, latency, connected)

    def _uplink_metrics(self) -> Iterable[Metric]:
        stats = self._uplink()
        if stats is None:
            return
        connects = int(getattr(stats, "connects", 0))
        counters = {
            "sent": ("Envelopes sent by the uplink.", int(getattr(stats, "sent", 0))),
            "acked": ("Envelopes acknowledged to the uplink.", int(getattr(stats, "acked", 0))),
            "reconnects": ("Uplink connections after the first.", max(connects - 1, 0)),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(f"mallpulse_gateway_uplink_{name}", doc, value)


def serve(port: int, collector: Collector, host: str = "0.0.0.0") -> tuple[WSGIServer, Thread]:  # noqa: S104 - scraped from the store network
    """Serve /metrics with this collector on `port` (0: any free port); returns the server and
    its thread (call `server.shutdown()` to stop)."""
    registry = CollectorRegistry()
    registry.register(collector)
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("gateway metrics served", extra={"port": server.server_port})
    return server, thread
