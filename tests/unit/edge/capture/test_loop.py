"""A looped file source keeps time increasing across passes, and the daemon paces files."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import cv2
import numpy as np

from edge.agent import EpochSource
from edge.capture import FileSource, open_source


def _video(path: Path, frames: int = 10, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return path


def test_loop_restarts_the_file_with_increasing_time(tmp_path: Path) -> None:
    src = open_source(str(_video(tmp_path / "a.avi")), loop=True)
    assert isinstance(src, FileSource)
    stamps = [t for _, t in itertools.islice(src, 35)]  # three and a half passes of 10 frames
    src.stop()
    assert len(stamps) == 35
    assert all(b > a for a, b in itertools.pairwise(stamps))
    steps = np.diff(stamps)
    assert np.allclose(steps, 0.1, atol=1e-6), steps


def test_without_loop_the_file_ends(tmp_path: Path) -> None:
    assert len(list(FileSource(_video(tmp_path / "b.avi")))) == 10


def test_paced_file_runs_at_stream_speed(tmp_path: Path) -> None:
    src = EpochSource(FileSource(_video(tmp_path / "c.avi", frames=6, fps=20.0)), paced=True)
    before = time.time()
    stamps = [t for _, t in src]
    assert len(stamps) == 6
    # epoch timestamps start at the moment playback began and follow the stream clock
    assert stamps[0] >= before - 0.01
    assert np.allclose(np.diff(stamps), 0.05, atol=1e-6)
    assert time.time() >= stamps[-1] - 0.01  # never yielded ahead of the wall clock
