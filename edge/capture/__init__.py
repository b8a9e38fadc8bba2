"""Capture: frame sources yielding (frame, timestamp), files and live streams."""

from __future__ import annotations

from pathlib import Path

from edge.capture.live import LiveSource
from edge.capture.source import CaptureError, FileSource, FrameSource, VideoReader, open_cv_capture

LIVE_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "usb:")


def open_source(
    source: str, *, max_fps: float | None = None, stall_timeout_s: float = 10.0, loop: bool = False
) -> FileSource | LiveSource:
    """A file source for paths, a reconnecting live source for rtsp/http URLs and 'usb:N'."""
    if source.startswith(LIVE_PREFIXES):
        if source.startswith("usb:") and not source[4:].isdigit():
            raise CaptureError(f"camera source '{source}': expected 'usb:N' with N a number")
        return LiveSource(
            lambda: open_cv_capture(source, stall_timeout_s),
            name=source.split("@")[-1],
            max_fps=max_fps,
            stall_timeout_s=stall_timeout_s,
        )
    return FileSource(Path(source), max_fps=max_fps, loop=loop)


__all__ = [
    "CaptureError",
    "FileSource",
    "FrameSource",
    "LiveSource",
    "VideoReader",
    "open_source",
]
