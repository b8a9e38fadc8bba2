"""One PostgreSQL LISTEN connection per ingest process for every gRPC config watch.

A thread LISTENs on the config channel while there are watchers. Publishing NOTIFYs with the
device id; the hub wakes that device's watchers, each through its own one-slot queue (wake-ups
coalesce: a watcher reads the newest config, not each version). After the connection is opened
again every watcher is woken, so a publish made while it was down is not missed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator

import psycopg

from cloud.core.metrics import LISTEN_RECONNECTS, LISTEN_SUBSCRIBERS
from cloud.db.repositories.devices_config import CONFIG_CHANNEL

log = logging.getLogger(__name__)
HUB_APPLICATION = "mallpulse-config-hub"  # its LISTEN connection, as pg_stat_activity shows
_TICK_S = 1.0  # how often the thread looks whether it should stop
_RETRY_S = (0.5, 1.0, 2.0, 5.0)

Wake = queue.Queue[None]


class ConfigWatchHub:
    """Fans one LISTEN connection out to the config watches of this process."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._lock = threading.Lock()
        self._watchers: dict[str, set[Wake]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def watchers(self) -> int:
        """How many watches are subscribed now."""
        with self._lock:
            return sum(len(w) for w in self._watchers.values())

    @contextlib.contextmanager
    def subscribe(self, device_id: str) -> Iterator[Wake]:
        """A queue that gets an item whenever the device's config may have changed."""
        wake: Wake = queue.Queue(maxsize=1)
        with self._lock:
            self._watchers.setdefault(device_id, set()).add(wake)
            if self._thread is None or not self._thread.is_alive():
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="config-hub", daemon=True
                )
                self._thread.start()
        LISTEN_SUBSCRIBERS.labels(CONFIG_CHANNEL).inc()
        try:
            yield wake
        finally:
            LISTEN_SUBSCRIBERS.labels(CONFIG_CHANNEL).dec()
            with self._lock:
                self._watchers[device_id].discard(wake)
                if not self._watchers[device_id]:
                    del self._watchers[device_id]
                if not self._watchers:  # the last one left: close the LISTEN connection
                    self._stop.set()
                    self._thread = None

    def close(self) -> None:
        """Stop the thread (watches still open get no more wake-ups)."""
        with self._lock:
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5.0)

    def _wake(self, device_id: str | None) -> None:
        with self._lock:
            targets = (
                [w for ws in self._watchers.values() for w in ws]
                if device_id is None
                else list(self._watchers.get(device_id, ()))
            )
        for wake in targets:
            with contextlib.suppress(queue.Full):  # already woken: one look covers both
                wake.put_nowait(None)

    def _run(self, stop: threading.Event) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                with psycopg.connect(
                    self.dsn, autocommit=True, application_name=HUB_APPLICATION
                ) as conn:
                    conn.execute(f"LISTEN {CONFIG_CHANNEL}")
                    attempt = 0
                    self._wake(None)  # whatever was published while not listening
                    while not stop.is_set():
                        for note in conn.notifies(timeout=_TICK_S):
                            self._wake(note.payload)
            except psycopg.Error as exc:
                LISTEN_RECONNECTS.labels(CONFIG_CHANNEL).inc()
                log.warning("config hub lost its database connection", extra={"error": str(exc)})
                stop.wait(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
                attempt += 1
