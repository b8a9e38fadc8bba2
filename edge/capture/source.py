"""Frame sources: video files (stream timestamps) and live streams/cameras (monotonic clock).

Live sources reconnect with exponential backoff and run a stall watchdog: a reader thread owns
the OpenCV capture and a stream that stops delivering frames without closing is reopened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge.detect.types import Frame
from edge.errors import EdgeError

log = logging.getLogger(__name__)


class CaptureError(EdgeError):
    """A video source cannot be opened or decoded."""


class VideoReader(Protocol):
    """The part of cv2.VideoCapture a live source uses."""

    def read(self) -> tuple[bool, Any]:
        """Next frame."""
        ...

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        """Whether the source opened."""
        ...

    def release(self) -> None:
        """Close the source."""
        ...


class FrameSource(Protocol):
    """Iterates (frame, timestamp seconds); `stop()` may be called from another thread."""

    def __iter__(self) -> Iterator[tuple[Frame, float]]:
        """Frames and their timestamps."""
        ...

    def stop(self) -> None:
        """Make the iteration end soon."""
        ...


class RateCap:
    """Keeps at most max_fps frames a second (stream time), as close to max_fps as the source
    allows: one frame per 1 / max_fps slot, the first that reaches the slot."""

    #: seconds a frame may come before its slot (float noise in stream timestamps)
    EARLY_S = 1e-3

    def __init__(self, max_fps: float | None) -> None:
        self.period = 1.0 / max_fps if max_fps else 0.0
        self.due: float | None = None
        self.dropped = 0

    def admit(self, t: float) -> bool:
        """Whether a frame at time t is kept."""
        if self.due is not None and t < self.due - self.EARLY_S:
            self.dropped += 1
            return False
        # The next slot follows this slot, not this frame: measuring from the kept frame (which
        # comes up to a source frame late) made 25 fps capped at 10 deliver 8.3. After a gap
        # (a stall, a reconnect) the slots start again from the frame, without a burst.
        late = self.due is not None and t - self.due < self.period
        self.due = (self.due if late and self.due is not None else t) + self.period
        return True


class FileSource:
    """A video file (mp4, avi, gif...); timestamps in seconds from the stream, first frame 0."""

    def __init__(
        self, path: str | Path, *, max_fps: float | None = None, loop: bool = False
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CaptureError(f"video file {self.path} does not exist")
        self._cap = self._open()
        self._loop = loop
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else 25.0
        self._cap_rate = RateCap(max_fps)
        #: frames per second this source yields: the file's rate, or the cap when lower
        self.rate = min(self.fps, max_fps) if max_fps else self.fps
        self._stop = threading.Event()
        self.epoch_offset = time.time()  # stream position + this = wall-clock epoch seconds

    def _open(self) -> Any:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise CaptureError(f"video file {self.path} cannot be opened (not a video?)")
        return cap

    def __iter__(self) -> Iterator[tuple[Frame, float]]:
        """Frames with stream timestamps (monotonic; frame count / fps where the stream lies).

        With `loop`, the file starts again at its end and time keeps increasing."""
        first: float | None = None
        last = -1.0
        index = 0
        base = 0.0  # stream time at which the current pass started
        try:
            while not self._stop.is_set():
                ok, frame = self._cap.read()
                if not ok:
                    if index == 0:
                        raise CaptureError(f"video file {self.path} has no decodable frame")
                    if not self._loop:
                        return
                    self._cap.release()
                    self._cap = self._open()  # reopening also works for GIFs, unlike seeking
                    first, base = None, last + 1.0 / self.fps
                    continue
                pos = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                first = pos if first is None else first
                t = base + pos - first
                if t <= last:  # missing or repeated stream time: fall back to the frame rate
                    t = last + 1.0 / self.fps
                last = t
                index += 1
                if self._cap_rate.admit(t):
                    yield np.ascontiguousarray(frame), t
        finally:
            self._cap.release()

    @property
    def dropped(self) -> int:
        """Frames skipped by the frame-rate cap."""
        return self._cap_rate.dropped

    def stop(self) -> None:
        """End the iteration after the current frame."""
        self._stop.set()


def open_cv_capture(source: str, timeout_s: float) -> VideoReader:
    """An OpenCV capture for a URL (FFmpeg, open/read timeouts) or 'usb:N'."""
    ms = int(timeout_s * 1000)
    if source.startswith("usb:"):
        return cv2.VideoCapture(int(source[4:]))
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
