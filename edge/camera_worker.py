"""One thread per camera: frames -> pipeline -> envelopes -> sink (the outbox).

A camera that stalls or fails only stops its own thread's progress: the source is reopened
with backoff, and the other cameras keep running. Geometry updates from remote config are
handed over to the camera thread and applied between two frames.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from edge.config import CameraConfig
from edge.health.metrics import CameraSample
from edge.uplink.base import Backoff
from protos.mallpulse.v1 import telemetry_pb2

log = logging.getLogger(__name__)

Envelopes = list[telemetry_pb2.Envelope]
Sink = Callable[[Envelopes], None]


class FrameSource(Protocol):
    """Yields (frame, timestamp) pairs until stopped or exhausted."""

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        """Frames with their wall-clock timestamps."""
        ...

    def stop(self) -> None:
        """Stop yielding frames and release the device (callable from another thread)."""


class CameraPipeline(Protocol):
    """The vision pipeline of one camera (edge.pipeline.CameraPipeline)."""

    def process(self, frame: Any, t: float) -> Envelopes:
        """Feed a frame; returns the envelopes of windows that closed."""
        ...

    def flush(self, t: float) -> Envelopes:
        """Close the open window (shutdown)."""
        ...

    def update_camera(self, camera: CameraConfig) -> None:
        """Swap lines, zones and shelves live."""

    @property
    def stats(self) -> Any:
        """Frames processed/skipped, detector latency ms, fps."""


SourceFactory = Callable[[CameraConfig], FrameSource]


def _dropped(source: object) -> int:
    value = getattr(source, "dropped", 0)
    return value if isinstance(value, int) else 0


def stat(stats: Any, *names: str) -> float:
    """The first of `names` present in a stats object or mapping, else 0."""
    for name in names:
        value = stats.get(name) if isinstance(stats, dict) else getattr(stats, name, None)
        if isinstance(value, int | float):
            return float(value)
    return 0.0


class CameraWorker:
    """Runs one camera in its own thread and reports its health."""

    def __init__(
        self,
        camera: CameraConfig,
        pipeline: CameraPipeline,
        source_factory: SourceFactory,
        sink: Sink,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.camera = camera
        self.pipeline = pipeline
        self._source_factory = source_factory
        self._sink = sink
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: CameraConfig | None = None
        self._source: FrameSource | None = None
        self._thread: threading.Thread | None = None
        self.frames = 0
        self._dropped_closed = 0  # frames dropped by sources that have ended
        self.reconnects = 0
        self.connected = False
        self._fps_mark = (time.monotonic(), 0)

    def start(self) -> None:
        """Start the camera thread."""
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera.id}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop; the source is stopped to unblock a pending read."""
        self._stop.set()
        with self._lock:
            source = self._source
        if source is not None:
            source.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread (which flushes the open window); True when it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def update_camera(self, camera: CameraConfig) -> None:
        """Hand new geometry to the camera thread (applied before the next frame)."""
        with self._lock:
            self._pending = camera

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._stream_once() and not self._stop.is_set():
                    # a finite source (a file without `loop`) is done: replaying it would
                    # count the same people again
                    log.info("camera source ended", extra={"camera_id": self.camera.id})
                    break
            except Exception as exc:  # a broken camera must not take the agent down
                self.reconnects += 1
                log.warning(
                    "camera failed; reopening",
                    extra={"camera_id": self.camera.id, "error": repr(exc)},
                )
            finally:
                self.connected = False
            if not self._stop.is_set():
                self._stop.wait(self._backoff.next_delay())
        try:
            self._emit(self.pipeline.flush(self._clock()))
        except Exception:  # log it; the other cameras still flush
            log.exception("flushing the open window failed", extra={"camera_id": self.camera.id})
        close = getattr(self.pipeline, "close", None)  # a pipelined pipeline owns a thread
        if close is not None:
            close()

    def _stream_once(self) -> bool:
        """Stream one opened source; True when it ran out of frames (not stopped by us)."""
        source = self._source_factory(self.camera)
        with self._lock:
            self._source = source
        if self._stop.is_set():
            source.stop()
        try:
            for frame, t in source:
                self.connected = True
                self._backoff.reset()
                self._apply_pending()
                self.frames += 1
                self._emit(self.pipeline.process(frame, t))
                if self._stop.is_set():
                    return False
        finally:
            source.stop()
            with self._lock:
                self._source = None
                self._dropped_closed += _dropped(source)
        return True

    def _apply_pending(self) -> None:
        with self._lock:
            camera, self._pending = self._pending, None
        if camera is not None:
            self.pipeline.update_camera(camera)
            self.camera = camera
            log.info("camera geometry updated", extra={"camera_id": camera.id})

    def _emit(self, envelopes: Envelopes) -> None:
        if envelopes:
            self._sink(envelopes)

    def _source_state(self) -> tuple[bool, int]:
        """(connected, reconnects made inside the current source), as far as it tells."""
        with self._lock:
            source = self._source
        if source is None:
            return self.connected, 0
        live = getattr(source, "connected", None)
        inner = getattr(source, "reconnects", 0)
        connected = self.connected if live is None else bool(live)
        return connected, inner if isinstance(inner, int) else 0

    @property
    def frames_dropped(self) -> int:
        """Frames the camera's sources dropped (rate cap, slow pipeline) since start."""
        with self._lock:
            current = _dropped(self._source) if self._source is not None else 0
            return self._dropped_closed + current

    def metric_sample(self) -> CameraSample:
        """Frames since start, detector latency and link state, for the metrics scrape."""
        connected, _ = self._source_state()
        latency = stat(self.pipeline.stats, "detector_latency_ms", "latency_ms")
        return CameraSample(self.camera.id, self.frames, latency, connected)

    def health(self) -> telemetry_pb2.CameraHealth:
        """CameraHealth with the frame rate since the previous call."""
        now, frames = time.monotonic(), self.frames
        then, before = self._fps_mark
        self._fps_mark = (now, frames)
        stats = self.pipeline.stats
        connected, inner_reconnects = self._source_state()
        return telemetry_pb2.CameraHealth(
            camera_id=self.camera.id,
            connected=connected,
            fps=(frames - before) / (now - then) if now > then else 0.0,
            frames_dropped=self.frames_dropped + int(stat(stats, "frames_dropped")),
            detector_latency_ms=stat(stats, "detector_latency_ms", "latency_ms"),
            reconnects=self.reconnects + inner_reconnects,
        )
