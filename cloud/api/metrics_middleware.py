"""Pure ASGI middleware: request latency by route template, method and status for Prometheus."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.core.metrics import HTTP_REQUEST_SECONDS

#: Requests that matched no route share one label value, so arbitrary paths add no series.
UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/stores/{store_id}/...`), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED


class MetricsMiddleware:
    """Observes each HTTP request's duration, until its response has been sent (streams too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception that escapes every handler is answered 500 by the server

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            HTTP_REQUEST_SECONDS.labels(
                route_template(scope), scope["method"], str(status)
            ).observe(time.perf_counter() - start)
