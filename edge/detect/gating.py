"""Motion gating: run the neural detector only on frames that moved, keeping tracks alive."""

from __future__ import annotations

from edge.detect.motion import MotionGate
from edge.detect.types import Detections, Detector, Frame


class MotionGatedDetector:
    """Wraps a detector; `detect_gated` returns None on still frames (the tracker then coasts)."""

    def __init__(self, detector: Detector, gate: MotionGate, *, max_skip_s: float) -> None:
        self.detector = detector
        self.gate = gate
        self.max_skip_s = max_skip_s
        self._last_run: float | None = None

    def should_run(self, frame: Frame, t: float) -> bool:
        """Whether the detector must run on this frame (it moved, or the detector is due)."""
        moved = self.gate.has_motion(frame)
        overdue = self._last_run is None or t - self._last_run >= self.max_skip_s
        if not moved and not overdue:
            return False
        self._last_run = t
        return True

    def detect_gated(self, frame: Frame, t: float) -> Detections | None:
        """Detections, or None when the frame is still and the detector ran recently."""
        return self.detector.detect(frame) if self.should_run(frame, t) else None

    def detect(self, frame: Frame) -> Detections:
        """Always run the wrapped detector (the plain `Detector` protocol)."""
        return self.detector.detect(frame)
