"""Motion detector and motion gating."""

from __future__ import annotations

import numpy as np

from edge.detect import Detections, MotionDetector, MotionGate, MotionGatedDetector


def _frame(x: int | None) -> np.ndarray:
    img = np.full((180, 320, 3), 120, np.uint8)
    if x is not None:
        img[60:120, x : x + 20] = (20, 30, 200)
    return img


def test_motion_detector_boxes_a_moving_blob() -> None:
    det = MotionDetector(work_width=320)
    for _ in range(10):
        det.detect(_frame(None))
    found = det.detect(_frame(100))
    assert len(found) == 1
    x1, y1, x2, y2 = found.xyxy[0]
    assert abs(x1 - 100) <= 4 and abs(x2 - 120) <= 4 and abs(y1 - 60) <= 4 and abs(y2 - 120) <= 4


class _Counting:
    """A detector that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame: np.ndarray) -> Detections:
        self.calls += 1
        return Detections.empty()


def test_gate_skips_still_frames_but_runs_every_max_skip_s() -> None:
    inner = _Counting()
    gated = MotionGatedDetector(inner, MotionGate(), max_skip_s=1.0)
    results = [gated.detect_gated(_frame(None), i / 10) for i in range(25)]
    # first frame runs, then t=1.0 and t=2.0 are overdue
    assert inner.calls == 3 and sum(r is None for r in results) == 22
    assert gated.detect_gated(_frame(150), 2.5) is not None  # motion runs it at once
