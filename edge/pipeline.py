"""One camera's pipeline: frame -> detections -> tracks -> analytics -> window envelopes."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.aggregate.windows import WindowClock, envelope, window_report
from edge.analytics.age_gender import DlibAgeGender
from edge.analytics.camera import CameraAnalytics
from edge.analytics.demographics import (
    AgeGenderEstimator,
    DemographicsStage,
    OnnxAgeGender,
    YuNetFaceDetector,
)
from edge.analytics.emotion import OnnxEmotion
from edge.analytics.faces import QualityGate
from edge.analytics.geometry import polygon_edges
from edge.analytics.types import FrameTracks
from edge.config import CameraConfig, EdgeConfig
from edge.config.files import demographics_models, emotion_model
from edge.detect import (
    Detections,
    Detector,
    Frame,
    MotionDetector,
    MotionGate,
    MotionGatedDetector,
    Prepared,
    StagedDetector,
    build_detector,
)
from edge.errors import EdgeError
from edge.track.bytetrack import ByteTracker
from edge.track.types import Track, Tracker, TrackUpdate
from protos.mallpulse.v1 import telemetry_pb2 as pb

_FPS_SMOOTHING = 0.05
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """Counters for device health."""

    frames_processed: int
    frames_skipped: int
    detector_latency_ms: float
    fps: float


@dataclass(frozen=True, slots=True)
class _Job:
    """A frame whose detection runs on the worker thread."""

    frame: Frame
    t: float
    future: Future[Any] | None  # None: motion gating skipped the frame
    prepared: Prepared | None  # set for staged detectors: the worker only runs `infer`
    spent_s: float  # main-thread detection time so far (gate excluded, prepare included)


class CameraPipeline:
    """Turns one camera's frames into window envelopes (sequence 0; the outbox numbers them)."""

    def __init__(
        self,
        config: EdgeConfig,
        camera_id: str,
        detector: Detector,
        *,
        tracker: Tracker | None = None,
        demographics: DemographicsStage | None = None,
        pipelined: bool = False,
    ) -> None:
        self.config = config
        self.camera = config.camera(camera_id)
        self.detector = detector
        gating = config.detector.motion_gating
        self._gated = (
            MotionGatedDetector(
                detector, MotionGate(min_area=gating.min_area), max_skip_s=gating.max_skip_s
            )
            if gating.enabled and not isinstance(detector, MotionDetector)
            else None
        )
        self.tracker: Tracker = tracker or ByteTracker(config.tracker)
        self.analytics = CameraAnalytics(self.camera)
        self.demographics = demographics
        self._clock = WindowClock(config.window.length_s)
        self._window_start: float | None = None
        self._frames_in_window = 0
        self._last_tracks: list[Track] = []
        self._processed = self._skipped = self._detector_runs = 0
        self._detector_s = 0.0
        self._dt: float | None = None
        self._last_wall: float | None = None
        # pipelined: the network runs on frame n on a worker thread (onnxruntime releases the
        # GIL) while this thread decodes and tracks frame n-1 and letterboxes frame n+1;
        # results lag one frame
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="detect") if pipelined else None
        self._staged = detector if isinstance(detector, StagedDetector) else None
        self._pending: _Job | None = None

    def process(self, frame: Frame, t: float) -> list[pb.Envelope]:
        """Process one frame taken at epoch time `t`; returns envelopes of windows that closed.

        In pipelined mode the frame is analysed during the next call (or `flush`).
        """
        if self._worker is None:
            return self._analyse(frame, t, self._detect(frame, t))
        job = self._submit(self._worker, frame, t)
        try:
            return self._drain()  # the previous frame, while the worker runs this one
        finally:
            self._pending = job  # also when the previous frame failed: this one is not lost

    def _submit(self, worker: ThreadPoolExecutor, frame: Frame, t: float) -> _Job:
        """Gate the frame and hand its detection (only `infer` when staged) to the worker."""
        if self._gated is not None and not self._gated.should_run(frame, t):
            self._skipped += 1
            return _Job(frame, t, None, None, 0.0)
        start = time.perf_counter()
        if self._staged is None:
            return _Job(frame, t, worker.submit(_timed, self.detector.detect, frame), None, 0.0)
        prepared = self._staged.prepare(frame)
        future = worker.submit(_timed, self._staged.infer, prepared)
        return _Job(frame, t, future, prepared, time.perf_counter() - start)

    def _drain(self) -> list[pb.Envelope]:
        """Finish and analyse the frame on the worker, if any."""
        job, self._pending = self._pending, None
        if job is None:
            return []
        dets: Detections | None = None
        if job.future is not None:
            start = time.perf_counter()
            out, worker_s = job.future.result()
            if job.prepared is not None and self._staged is not None:
                out = self._staged.finish(job.prepared, out)
            dets = out
            self._detector_s += job.spent_s + worker_s + time.perf_counter() - start
            self._detector_runs += 1
        return self._analyse(job.frame, job.t, dets)

    def _analyse(self, frame: Frame, t: float, dets: Detections | None) -> list[pb.Envelope]:
        closed = self._close_until(t)
        if dets is None:
            update = TrackUpdate(self._last_tracks, [])
        else:
            update = self.tracker.update(dets, t)
            self._last_tracks = update.tracks
        h, w = frame.shape[:2]
        self.analytics.update(_frame_tracks(update, t, w, h))
        if self.demographics is not None:
            self.demographics.update(frame, update.tracks, t, update.removed)
        self._frames_in_window += 1
        self._tick()
        return closed

    def _detect(self, frame: Frame, t: float) -> Detections | None:
        """Motion gate and detector; None when gating skipped the frame."""
        start = time.perf_counter()
        if self._gated is not None:
            dets = self._gated.detect_gated(frame, t)
        else:
            dets = self.detector.detect(frame)
        if dets is None:
            self._skipped += 1
        else:
            self._detector_s += time.perf_counter() - start
            self._detector_runs += 1
        return dets

    def _tick(self) -> None:
        self._processed += 1
        now = time.perf_counter()
        if self._last_wall is not None:
            dt = now - self._last_wall  # smooth the interval, not the rate: rates do not average
            self._dt = dt if self._dt is None else self._dt + _FPS_SMOOTHING * (dt - self._dt)
        self._last_wall = now

    def _close_until(self, t: float) -> list[pb.Envelope]:
        if self._window_start is None:
            self._window_start = self._clock.start_of(t)
            return []
        out = []
        for end in self._clock.ends_between(self._window_start, t):
            out.append(self._emit(self._window_start, end))
            self._window_start = end
        return out

    def _emit(self, start: float, end: float) -> pb.Envelope:
        window = self.analytics.take_window(start, end)
        demo = self.demographics.take_window() if self.demographics is not None else {}
        moods = self.demographics.take_emotions() if self.demographics is not None else {}
        report = window_report(window, self._frames_in_window, demo, moods)
        log.debug(
            "window closed",
            extra={
                "camera_id": self.camera.id,
                "window_start": start,
                "window_end": end,
                "frames": self._frames_in_window,
            },
        )
        self._frames_in_window = 0
        dev = self.config.device
        return envelope(
            device_id=dev.device_id,
            store_id=dev.store_id,
            camera_id=self.camera.id,
            start=start,
            end=end,
            report=report,
        )

    def flush(self, t: float) -> list[pb.Envelope]:
        """Shutdown: end every track, close windows up to `t` and the open one, ending at `t`."""
        try:
            closed = self._drain()
        except Exception:  # the open window still closes, without the last frame
            log.exception("detection of the last frame failed", extra={"camera_id": self.camera.id})
            closed = []
        closed += self._close_until(t)
        ended = self.tracker.flush()
        self._last_tracks = []
        self.analytics.update(FrameTracks(t, np.zeros(0, np.int64), np.zeros((0, 2)), tuple(ended)))
        if self.demographics is not None:
            self.demographics.end_all()
        if self._window_start is not None and t > self._window_start:
            closed.append(self._emit(self._window_start, t))
            self._window_start = t
        return closed

    def close(self) -> None:
        """Stop the detection worker of a pipelined pipeline (call `flush` first)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)

    def update_camera(self, camera: CameraConfig) -> None:
        """Swap lines, zones and shelves live; tracks and unchanged counters carry on."""
        if camera.id != self.camera.id:
            raise EdgeError(f"pipeline of camera '{self.camera.id}' got config of '{camera.id}'")
        self.camera = camera
        self.analytics.update_camera(camera)

    @property
    def stats(self) -> PipelineStats:
        """Frames processed, frames skipped by motion gating, mean detector latency, fps."""
        runs = self._detector_runs
        return PipelineStats(
            frames_processed=self._processed,
            frames_skipped=self._skipped,
            detector_latency_ms=1000.0 * self._detector_s / runs if runs else 0.0,
            fps=1.0 / self._dt if self._dt else 0.0,
        )

    @property
    def tracks(self) -> list[Track]:
        """Confirmed tracks visible on the last frame (for annotation)."""
        return self._last_tracks


def _timed(fn: Any, arg: Any) -> tuple[Any, float]:
    """`fn(arg)` and the seconds it took (run on the worker thread)."""
    start = time.perf_counter()
    out = fn(arg)
    return out, time.perf_counter() - start


def _frame_tracks(update: TrackUpdate, t: float, width: int, height: int) -> FrameTracks:
    n = len(update.tracks)
    ids = np.fromiter((tr.id for tr in update.tracks), np.int64, n)
    pts = np.array([tr.anchor for tr in update.tracks], np.float64).reshape(n, 2)
    pts /= (width, height)
    return FrameTracks(t, ids, pts, tuple(update.removed))


def build_pipeline(
    config: EdgeConfig, camera_id: str, *, base_dir: Path | None = None, pipelined: bool = False
) -> CameraPipeline:
    """Pipeline with the configured detector and, when enabled, the demographics stage."""
    detector = build_detector(config.detector, base_dir=base_dir)
    demographics = build_demographics(config, base_dir=base_dir, camera_id=camera_id)
    return CameraPipeline(
        config, camera_id, detector, demographics=demographics, pipelined=pipelined
    )


def build_demographics(
    config: EdgeConfig, *, base_dir: Path | None = None, camera_id: str | None = None
) -> DemographicsStage | None:
    """The demographics stage from config, or None when disabled; emotion votes go to the zones
    of `camera_id` (camera-wide without one)."""
    demo = config.demographics
    if not demo.enabled:
        return None
    # One rule for model files (edge/config/files.py): relative to the models folder.
    face, age_gender = demographics_models(config, base_dir)
    estimator: AgeGenderEstimator | None = None
    if age_gender is not None:
        dlib = age_gender.suffix in (".yaml", ".yml")
        estimator = DlibAgeGender(age_gender) if dlib else OnnxAgeGender(age_gender)
    gate = QualityGate(
        min_face_px=demo.min_face_px,
        max_yaw=demo.max_yaw,
        max_roll_deg=demo.max_roll_deg,
        min_sharpness=demo.min_sharpness,
    )
    mood_model = emotion_model(config, base_dir)
    emotion = OnnxEmotion(mood_model, demo.emotion_labels) if mood_model is not None else None
    cameras = [c for c in config.cameras if c.id == camera_id]
    zones = {z.id: polygon_edges(z.polygon) for c in cameras for z in c.zones}
    return DemographicsStage(
        YuNetFaceDetector(face),
        estimator,
        sample_every_s=demo.sample_every_s,
        max_samples=demo.max_samples_per_track,
        gate=gate,
        emotion=emotion,
        zones=zones,
    )
