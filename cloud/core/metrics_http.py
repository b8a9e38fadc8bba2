"""A small HTTP server for processes without an API: /metrics, /healthz and /readyz.

Ingest and the Celery workers serve it on MALLPULSE_METRICS_PORT; the API has its own routes.
/healthz only says the process answers; /readyz runs the process's dependency checks and
answers 503 with an RFC 9457 problem body naming the failures.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloud.core.metrics import exposition
from cloud.core.readiness import Check, run_checks

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/metrics":
            body, content_type = exposition()
            self._reply(200, body, content_type)
        elif path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/readyz":
            results = run_checks(self.server.checks)
            failed = {k: v for k, v in results.items() if v != "ok"}
            if failed:
                self._problem(503, "; ".join(f"{k}: {v}" for k, v in failed.items()))
            else:
                self._json(200, {"status": "ok", "checks": results})
        else:
            self._problem(404, f"no such path: {path[:100]}")

    def _json(self, status: int, doc: object, content_type: str = "application/json") -> None:
        self._reply(status, json.dumps(doc).encode(), content_type)

    def _problem(self, status: int, detail: str) -> None:
        title = "Not ready" if status == 503 else "Not found"
        doc = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        self._json(status, doc, "application/problem+json")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes and probes are not logged (they come every few seconds)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    checks: Mapping[str, Check]


class MetricsServer:
    """Serves /metrics, /healthz and /readyz on a thread until stopped."""

    def __init__(self, host: str, port: int, checks: Mapping[str, Check]) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.checks = checks
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was asked for)."""
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        """Start serving; returns self."""
        self._thread.start()
        log.info("metrics served", extra={"port": self.port})
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def serve_metrics(port: int | None, checks: Mapping[str, Check]) -> MetricsServer | None:
    """Start the server on `port` on every interface (Prometheus and the kubelet come from
    outside the pod); None when no port is configured."""
    if port is None:
        return None
    return MetricsServer("0.0.0.0", port, checks).start()  # noqa: S104 - metrics and probes only
