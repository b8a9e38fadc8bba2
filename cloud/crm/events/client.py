"""A small Python client of the collection API (httpx): calls are queued and sent in batches
by a background thread, retried with exponential backoff (tenacity) on network errors, 429 and
5xx, and flushed when the process exits. A 4xx other than 429 drops the batch with a log line
(retrying cannot fix it).

    client = EventsClient("https://api.example", write_key="mpwk_...")
    client.track("Order Completed", anonymous_id="a1", properties={"revenue": 12.5})
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)
_STOP = object()


class RetryableError(Exception):
    """The API answered 429 or 5xx: worth trying again later."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RetryableError | httpx.TransportError)


class EventsClient:
    """Queue, batch and send Segment-spec calls to /v1/events/batch with a write key."""

    def __init__(
        self,
        api_host: str,
        *,
        write_key: str,
        flush_at: int = 100,
        flush_interval_s: float = 1.0,
        max_retries: int = 8,
        max_backoff_s: float = 30.0,
        max_queue: int = 10_000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = api_host.rstrip("/") + "/v1/events/batch"
        self.flush_at = min(flush_at, 500)
        self.flush_interval_s = flush_interval_s
        self.stats = {"sent": 0, "dropped": 0, "retries": 0}
        self._retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(max_retries),
            wait=wait_exponential_jitter(
                multiplier=0.5, max=max_backoff_s, jitter=min(1.0, max_backoff_s)
            ),
            before_sleep=lambda _: self._count("retries"),
            reraise=True,
        )
        self._http = httpx.Client(auth=(write_key, ""), timeout=10.0, transport=transport)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="mallpulse-events", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- the calls -----------------------------------------------------------------------

    def track(self, event: str, *, properties: dict[str, Any] | None = None, **who: Any) -> str:
        """Queue a track call; returns its messageId."""
        return self._enqueue({"type": "track", "event": event, "properties": properties or {}}, who)

    def identify(self, *, traits: dict[str, Any] | None = None, **who: Any) -> str:
        """Queue an identify call (user_id and/or traits email/phone find the person)."""
        return self._enqueue({"type": "identify", "traits": traits or {}}, who)

    def page(self, name: str, *, properties: dict[str, Any] | None = None, **who: Any) -> str:
        """Queue a page call."""
        return self._enqueue({"type": "page", "name": name, "properties": properties or {}}, who)

    def screen(self, name: str, *, properties: dict[str, Any] | None = None, **who: Any) -> str:
        """Queue a screen call."""
        return self._enqueue({"type": "screen", "name": name, "properties": properties or {}}, who)

    def alias(self, *, user_id: str, previous_id: str) -> str:
        """Queue an alias call: previous_id (an anonymous id) is user_id."""
        return self._enqueue({"type": "alias", "previousId": previous_id}, {"user_id": user_id})

    def _enqueue(self, call: dict[str, Any], who: dict[str, Any]) -> str:
        names = {"user_id": "userId", "anonymous_id": "anonymousId", "context": "context",
                 "timestamp": "timestamp", "message_id": "messageId"}  # fmt: skip
        for key, value in who.items():
            if key not in names:
                raise TypeError(f"unknown argument {key!r}")
            call[names[key]] = value.isoformat() if isinstance(value, datetime) else value
        call.setdefault("messageId", uuid.uuid4().hex)
        call.setdefault("timestamp", datetime.now(UTC).isoformat())
        try:
            self._queue.put_nowait(call)
        except queue.Full:
            self._count("dropped")
            log.warning("events queue full; call dropped", extra={"message_id": call["messageId"]})
        return str(call["messageId"])

    # --- sending -------------------------------------------------------------------------

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every call queued so far was sent (or given up)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout_s)

    def close(self) -> None:
        """Send what is queued, then stop (registered with atexit)."""
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        self._thread.join(timeout=60)
        self._http.close()

    def _run(self) -> None:
        batch: list[dict[str, Any]] = []
        while True:
            try:
                item = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                item = None
            if isinstance(item, dict):
                batch.append(item)
                if len(batch) < self.flush_at:
                    continue
            self._send(batch)
            batch = []
            if isinstance(item, threading.Event):
                item.set()
            elif item is _STOP:
                return

    def _send(self, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        try:
            self._retrying(self._post, batch)
        except Exception as exc:  # every failure is logged and counted, never raised into the app
            self._count("dropped", len(batch))
            log.warning("events batch dropped", extra={"calls": len(batch), "reason": str(exc)})
            return
        self._count("sent", len(batch))

    def _post(self, batch: list[dict[str, Any]]) -> None:
        body = {"batch": batch, "sentAt": datetime.now(UTC).isoformat()}
        res = self._http.post(self.url, json=body)
        if res.status_code == 429 or res.status_code >= 500:
            raise RetryableError(f"{res.status_code}: {res.text[:200]}")
        if res.is_error:
            raise ValueError(f"refused ({res.status_code}): {res.text[:500]}")

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n
