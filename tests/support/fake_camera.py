"""A fake camera side for daemon tests (`--pipeline/--source tests.support.fake_camera:...`).

Frames every 20 ms; every 5th frame closes a one-second window counting one person across each
line of the camera, so the cloud accepts it and `line_counts` sums to the windows stored. After
$FAKE_WINDOWS windows (default unlimited) a camera closes no more windows, so a test knows when
production has ended; a flush (shutdown) still closes one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from protos.mallpulse.v1 import telemetry_pb2


class Ticker:
    """Yields (frame, epoch time) every 20 ms until stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[tuple[object, float]]:
        while not self._stop.is_set():
            yield object(), time.time()
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop yielding."""
        self._stop.set()


class Pipeline:
    """Closes a window every 5 frames, at most $FAKE_WINDOWS of them."""

    def __init__(self, camera: Any) -> None:
        self.camera = camera
        self.frames = 0
        self.windows = 0
        self.limit = int(os.environ.get("FAKE_WINDOWS", "0")) or None
        self.stats = {"frames_processed": 0, "detector_latency_ms": 1.0}

    def _window(self, t: float) -> telemetry_pb2.Envelope:
        env = telemetry_pb2.Envelope(camera_id=self.camera.id)
        env.window_start.FromNanoseconds(int((t - 1.0) * 1e9))
        env.window_end.FromNanoseconds(int(t * 1e9))
        env.window.frames_processed = 5
        for line in self.camera.lines:
            env.window.lines.add(line_id=line.id, in_count=1)
        self.windows += 1
        return env

    def process(self, frame: object, t: float) -> list[telemetry_pb2.Envelope]:
        """One frame; a window every 5th frame until the limit."""
        self.frames += 1
        self.stats["frames_processed"] = self.frames
        if self.frames % 5 or (self.limit is not None and self.windows >= self.limit):
            return []
        return [self._window(t)]

    def flush(self, t: float) -> list[telemetry_pb2.Envelope]:
        """The open window, at shutdown."""
        return [self._window(t)]

    def update_camera(self, camera: Any) -> None:
        """A pushed config changed the camera."""
        self.camera = camera


def pipeline_factory() -> Callable[[Any, Any], Pipeline]:
    """--pipeline tests.support.fake_camera:pipeline_factory"""
    return lambda config, camera: Pipeline(camera)


def source_factory() -> Callable[[Any], Ticker]:
    """--source tests.support.fake_camera:source_factory"""
    return lambda camera: Ticker()
