"""Pure ASGI middleware: a request id per request (X-Request-ID in and out), an access log, and
the request body limit (413 problem)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.api.problems import PROBLEM_BASE
from cloud.core.logging import request_id_var

log = logging.getLogger("mallpulse.access")


class RequestIdMiddleware:
    """Sets the request-id context variable and echoes it in the X-Request-ID header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = (
            incoming[:64]
            if incoming.isascii() and incoming.isprintable() and incoming
            else uuid.uuid4().hex
        )
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 0

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - start) * 1000, 2),
                },
            )
            request_id_var.reset(token)


class BodyTooLargeError(Exception):
    """Raised by the counting `receive` once a body passes its limit."""


def _problem_body(scope: Scope, status: int, title: str, detail: str, slug: str) -> bytes:
    body: dict[str, object] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": scope.get("path", ""),
    }
    if rid := request_id_var.get():
        body["request_id"] = rid
    return json.dumps(body).encode()


class BodyLimitMiddleware:
    """Refuses request bodies over a limit with a 413 problem, before the app buffers them.

    A declared Content-Length over the limit is refused before any byte is read; a chunked (or
    lying) body is counted as it streams, and the answer becomes 413 at the chunk that crosses
    the limit, whatever the app then makes of the interrupted read. `route_limits` gives some
    paths (bulk imports) a larger limit than `max_bytes`.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, route_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.route_limits = dict(route_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.route_limits.get(scope["path"], self.max_bytes)
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(scope, send, 400, "Bad request", "Content-Length is not a number")
            return
        if declared is not None and declared > limit:
            await _refuse(scope, send, *_too_large(limit))
            return
        state = {"received": 0, "over": False, "started": False}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
            if state["over"]:
                raise BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                return  # the app's answer to the broken read is replaced by the 413
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise  # a broken read past the limit is ours to answer; anything else is not
        if state["over"] and not state["started"]:
            await _refuse(scope, send, *_too_large(limit))


def _too_large(limit: int) -> tuple[int, str, str]:
    return 413, "Content too large", f"the request body is larger than {limit} bytes"


def _content_length(scope: Scope) -> int | None:
    """The declared Content-Length; None when absent, -1 when it is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


async def _refuse(scope: Scope, send: Send, status: int, title: str, detail: str) -> None:
    slug = "payload-too-large" if status == 413 else "bad-request"
    body = _problem_body(scope, status, title, detail, slug)
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
