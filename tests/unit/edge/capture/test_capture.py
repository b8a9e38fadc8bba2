"""Frame sources: file timestamps and errors, frame-rate cap, reconnect, stall watchdog, stop."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.capture import CaptureError, FileSource, LiveSource, open_source


def _video(path: Path, frames: int = 20, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), (i * 10) % 255, np.uint8))
    writer.release()
    return path


def test_file_timestamps_come_from_the_stream(tmp_path: Path) -> None:
    stamps = [t for _, t in FileSource(_video(tmp_path / "a.avi"))]
    assert len(stamps) == 20
    np.testing.assert_allclose(stamps, np.arange(20) / 10.0, atol=1e-6)


def test_frame_rate_cap_uses_stream_time(tmp_path: Path) -> None:
    src = FileSource(_video(tmp_path / "a.avi", frames=40, fps=20.0), max_fps=5.0)
    stamps = [t for _, t in src]
    np.testing.assert_allclose(stamps, np.arange(10) * 0.2, atol=1e-6)
    assert src.dropped == 30


@pytest.mark.parametrize(("fps", "cap"), [(25.0, 10.0), (25.0, 12.5), (30.0, 7.0), (10.0, 25.0)])
def test_frame_rate_cap_delivers_the_cap(tmp_path: Path, fps: float, cap: float) -> None:
    # 25 fps capped at 10 used to deliver every third frame: 8.3 fps
    src = FileSource(_video(tmp_path / "a.avi", frames=int(fps * 4), fps=fps), max_fps=cap)
    stamps = [t for _, t in src]
    assert len(stamps) == pytest.approx(4 * min(fps, cap), abs=1)
    assert src.rate == min(fps, cap)
    assert max(np.diff(stamps)) < 2 / min(fps, cap)  # evenly spread, no long holes


@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_unreadable_video_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(CaptureError, match=str(bad)):
        list(FileSource(bad))


def test_missing_file_and_bad_usb_index(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist"):
        open_source(str(tmp_path / "absent.mp4"))
    with pytest.raises(CaptureError, match="usb:N"):
        open_source("usb:front")


def test_live_source_reconnects_with_backoff(tmp_path: Path) -> None:
    video = _video(tmp_path / "a.avi", frames=5)
    opened = []

    def opener() -> Any:
        opened.append(1)
        if len(opened) == 2:
            raise OSError("camera busy")  # one failed attempt between two good ones
        return cv2.VideoCapture(str(video))

    src = LiveSource(opener, stall_timeout_s=5.0, backoff_initial_s=0.01, backoff_max_s=0.02)
    frames = 0
    for _ in src:
        frames += 1
        if frames == 7:
            src.stop()
    # a slow consumer may lose frames to newer ones, so more passes may be needed than 2
    assert frames == 7 and len(opened) >= 3 and src.reconnects == len(opened) - 1


class _Stalling:
    """A reader that delivers two frames and then blocks like a stalled RTSP stream."""

    def __init__(self, release: threading.Event) -> None:
        self.n = 0
        self.release_event = release

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, Any]:
        self.n += 1
        if self.n > 2:
            self.release_event.wait(5.0)
            return False, None
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self) -> None:
        self.release_event.set()


def test_stall_watchdog_reconnects() -> None:
    readers: list[_Stalling] = []

    def opener() -> _Stalling:
        readers.append(_Stalling(threading.Event()))
        return readers[-1]

    src = LiveSource(opener, stall_timeout_s=0.2, backoff_initial_s=0.01)
    for got, _ in enumerate(src, start=1):
        if got == 4:
            src.stop()
    assert src.stalls >= 1 and src.reconnects == len(readers) - 1 >= 1
    for r in readers:
        r.release_event.set()


def test_stop_from_another_thread_ends_a_silent_source() -> None:
    src = LiveSource(lambda: _Stalling(threading.Event()), stall_timeout_s=60.0)
    threading.Timer(1.0, src.stop).start()
    assert 1 <= len(list(src)) <= 2  # the newest frame wins if the consumer lags


def test_unreachable_rtsp_stream_keeps_retrying_until_stopped() -> None:
    src = open_source("rtsp://user:secret@127.0.0.1:9/stream", stall_timeout_s=1.0)
    assert isinstance(src, LiveSource) and "secret" not in src.name
    src.backoff_initial_s = 0.05
    timer = threading.Timer(1.5, src.stop)
    timer.start()
    frames = list(src)
    timer.join()
    assert frames == [] and src.reconnects >= 1 and not src.connected
