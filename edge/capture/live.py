"""Live sources (RTSP/HTTP streams, USB cameras): reconnect with backoff, stall watchdog."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edge.capture.source import RateCap, VideoReader
from edge.detect.types import Frame

log = logging.getLogger(__name__)

_EOF = "eof"
_FAIL = "fail"
_Box = queue.Queue[tuple[str, Any, float]]


class LiveSource:
    """Frames from a live source with monotonic timestamps; reconnects forever until stopped.

    A reader thread owns the capture and hands over only the newest frame, so a slow pipeline
    drops frames instead of falling behind. `epoch_offset` turns timestamps into epoch seconds.
    """

    def __init__(
        self,
        opener: Callable[[], VideoReader],
        *,
        name: str = "live",
        max_fps: float | None = None,
        stall_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.opener = opener
        self.name = name
        self.stall_timeout_s = stall_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.epoch_offset = time.time() - time.monotonic()
        self.reconnects = 0
        self.stalls = 0
        self.connected = False
        self._rate = RateCap(max_fps)
        self._replaced = 0
        self._stop = threading.Event()

    @property
    def dropped(self) -> int:
        """Frames dropped: by the frame-rate cap, or replaced by a newer one before use."""
        return self._rate.dropped + self._replaced

    def stop(self) -> None:
        """Make the iteration end soon (safe from any thread)."""
        self._stop.set()

    def __iter__(self) -> Iterator[tuple[Frame, float]]:
        """Frames and monotonic timestamps, across reconnects, until `stop()`."""
        delay = self.backoff_initial_s
        first = True
        while not self._stop.is_set():
            if not first:
                self.reconnects += 1
                log.warning("reconnecting %s in %.1f s", self.name, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.backoff_max_s)
            first = False
            for frame, t in self._session():
                delay = self.backoff_initial_s  # a frame arrived: the link is healthy again
                if self._rate.admit(t):
                    yield frame, t
            self.connected = False

    def _session(self) -> Iterator[tuple[Frame, float]]:
        """Frames of one connection; returns on end of stream, failure, stall or stop."""
        box: _Box = queue.Queue(maxsize=1)
        done = threading.Event()
        reader = threading.Thread(
            target=self._read_loop, args=(box, done), name=f"capture-{self.name}", daemon=True
        )
        reader.start()
        last_frame = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    kind, frame, t = box.get(timeout=min(0.2, self.stall_timeout_s))
                except queue.Empty:
                    if time.monotonic() - last_frame > self.stall_timeout_s:
                        self.stalls += 1
                        log.warning("%s stalled for %.1f s", self.name, self.stall_timeout_s)
                        return
                    continue
                if kind != "frame":
                    log.warning("%s: %s", self.name, frame)
                    return
                self.connected = True
                last_frame = t
                yield frame, t
        finally:
            done.set()

    def _read_loop(self, box: _Box, done: threading.Event) -> None:
        try:
            cap = self.opener()
        except Exception as exc:  # OpenCV backends raise assorted errors
            self._put(box, (_FAIL, f"cannot open: {exc}", 0.0), done)
            return
        try:
            if not cap.isOpened():
                self._put(box, (_FAIL, "cannot open the source", 0.0), done)
                return
            while not done.is_set():
                ok, frame = cap.read()
                if not ok:
                    self._put(box, (_EOF, "stream ended or read failed", 0.0), done)
                    return
                self._put(box, ("frame", np.ascontiguousarray(frame), time.monotonic()), done)
        finally:
            cap.release()

    def _put(self, box: _Box, item: tuple[str, Any, float], done: threading.Event) -> None:
        """Keep only the newest item: drop an unconsumed older frame."""
        while not done.is_set():
            try:
                box.put_nowait(item)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    box.get_nowait()
                    self._replaced += 1
