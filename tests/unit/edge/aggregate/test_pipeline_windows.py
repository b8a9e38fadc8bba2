"""Windows and the CameraPipeline contract: envelopes, sequence 0, gaps, flush, live geometry."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge.aggregate import WindowClock
from edge.config import CameraConfig, DetectorConfig
from edge.detect import Detections, Prepared
from edge.pipeline import CameraPipeline
from protos.mallpulse.v1 import telemetry_pb2 as pb
from tests.unit.edge.vision import edge_config

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a multiple of 60
CAMERA = {
    "id": "cam",
    "source": "synthetic",
    "lines": [{"id": "door", "points": [[0.0, 0.5], [1.0, 0.5]], "in_direction": "right"}],
}


class _Walker:
    """A detector reporting one person walking down the image at 0.1 of its height a second."""

    def __init__(self) -> None:
        self.t = 0.0

    def detect(self, frame: np.ndarray) -> Detections:
        y = 10 + 10 * self.t  # 100 px high frame, feet at y + 20
        return Detections.from_arrays([[40, y, 50, y + 20]], [0.9])


def _pipeline(length_s: int = 60) -> tuple[CameraPipeline, _Walker]:
    det = _Walker()
    cfg = edge_config(
        CAMERA,
        window={"length_s": length_s},
        detector={"kind": "motion", "motion_gating": {"enabled": False}},
    )
    return CameraPipeline(cfg, "cam", det), det


def _feed(p: CameraPipeline, det: _Walker, start: float, end: float, fps: float = 5.0) -> list:  # type: ignore[type-arg]
    out = []
    for t in np.arange(start, end, 1 / fps):
        det.t = float(t)
        out += p.process(np.zeros((100, 100, 3), np.uint8), T0 + float(t))
    return out


def test_window_clock_aligns_to_epoch() -> None:
    clock = WindowClock(60)
    assert clock.start_of(T0 + 59.9) == T0
    assert clock.ends_between(T0, T0 + 150) == [T0 + 60, T0 + 120]


def test_one_envelope_per_closed_window_with_sequence_zero() -> None:
    p, det = _pipeline(length_s=5)
    envs = _feed(p, det, 0.0, 7.0)
    assert len(envs) == 1
    env = envs[0]
    assert env.sequence == 0 and env.camera_id == "cam" and env.device_id == "gw-test"
    assert env.window_start.seconds == T0 and env.window_end.seconds == T0 + 5
    assert env.window.frames_processed == 25
    # feet start at y=0.3 and cross 0.5 after 2 s (+ hysteresis): one in, in the first window
    assert (env.window.lines[0].in_count, env.window.lines[0].out_count) == (1, 0)
    tail = p.flush(T0 + 7.5)
    assert len(tail) == 1 and tail[0].window_end.ToNanoseconds() == int((T0 + 7.5) * 1e9)
    assert tail[0].window.frames_processed == 10


def test_gap_without_frames_produces_empty_windows() -> None:
    p, det = _pipeline(length_s=5)
    _feed(p, det, 0.0, 1.0)
    envs = _feed(p, det, 16.0, 16.5)
    assert [e.window_start.seconds - T0 for e in envs] == [0, 5, 10]
    assert [e.window.frames_processed for e in envs] == [5, 0, 0]


def test_stats_count_frames_and_detector_latency() -> None:
    p, det = _pipeline()
    _feed(p, det, 0.0, 2.0)
    st = p.stats
    assert st.frames_processed == 10 and st.frames_skipped == 0 and st.detector_latency_ms >= 0


def test_update_camera_swaps_lines_and_keeps_tracks() -> None:
    p, det = _pipeline(length_s=60)
    _feed(p, det, 0.0, 1.0)
    track_ids = {tr.id for tr in p.tracks}
    cam = CameraConfig.model_validate(
        CAMERA | {"lines": [{"id": "lower", "points": [[0.0, 0.7], [1.0, 0.7]]}]}
    )
    p.update_camera(cam)
    _feed(p, det, 1.0, 6.0)
    assert {tr.id for tr in p.tracks} == track_ids
    (env,) = p.flush(T0 + 6.0)
    assert [(x.line_id, x.out_count) for x in env.window.lines] == [("lower", 1)]
    with pytest.raises(Exception, match="got config of 'other'"):
        p.update_camera(cam.model_copy(update={"id": "other"}))


def test_motion_gating_skips_the_detector_on_still_frames() -> None:
    det = _Walker()
    cfg = edge_config(
        CAMERA,
        detector=DetectorConfig(kind="motion").model_dump()
        | {"motion_gating": {"enabled": True, "max_skip_s": 10.0}},
    )
    p = CameraPipeline(cfg, "cam", det)
    for i in range(20):
        p.process(np.zeros((100, 100, 3), np.uint8), T0 + i / 5)
    assert p.stats.frames_skipped == 19


class _Replay:
    """Replays precomputed detections in call order (the worker keeps calls in order)."""

    def __init__(self, frames: list[Detections]) -> None:
        self.frames = frames
        self.i = 0

    def detect(self, frame: np.ndarray) -> Detections:
        self.i += 1
        return self.frames[self.i - 1]


def test_pipelined_mode_gives_the_same_envelopes() -> None:
    from edge.synthetic import line_scenario, noisy_detections

    scenario = line_scenario()
    rng = np.random.default_rng(1)
    times = scenario.scene.times.tolist()
    dets = [noisy_detections(scenario.scene.boxes(t), rng) for t in times]
    frame = np.zeros((scenario.scene.height, scenario.scene.width, 3), np.uint8)
    cfg = edge_config(
        scenario.camera,
        window={"length_s": 5},
        detector={"kind": "motion", "motion_gating": {"enabled": False}},
    )
    results = []
    for pipelined in (False, True):
        p = CameraPipeline(cfg, "lines", _Replay(dets), pipelined=pipelined)
        envs = [e for t in times for e in p.process(frame, T0 + t)]
        envs += p.flush(T0 + times[-1] + 0.5)
        p.close()
        results.append([e.SerializeToString() for e in envs])
        assert p.stats.frames_processed == len(times)
    assert results[0] == results[1]
    lines = [x for env in results[1] for x in _parse(env).window.lines]
    assert (sum(x.in_count for x in lines), sum(x.out_count for x in lines)) == (6, 2)


class _StagedReplay:
    """A staged detector replaying given detections; records the threads `infer` ran on."""

    def __init__(self, frames: list[Detections]) -> None:
        self.frames = frames
        self.i = 0
        self.infer_threads: set[str] = set()

    def detect(self, frame: np.ndarray) -> Detections:
        prepared = self.prepare(frame)
        return self.finish(prepared, self.infer(prepared))

    def prepare(self, frame: np.ndarray) -> Prepared:
        self.i += 1
        return Prepared(np.full((1, 1, 1, 1), self.i - 1, np.float32), 1.0, (1, 1))

    def infer(self, prepared: Prepared) -> np.ndarray:
        self.infer_threads.add(threading.current_thread().name)
        return prepared.blob.copy()

    def finish(self, prepared: Prepared, raw: np.ndarray) -> Detections:
        return self.frames[int(raw.reshape(-1)[0])]


def test_pipelined_staged_detector_with_gating_gives_the_same_envelopes() -> None:
    from edge.synthetic import line_scenario, noisy_detections

    scenario = line_scenario()
    rng = np.random.default_rng(2)
    times = scenario.scene.times.tolist()
    dets = [noisy_detections(scenario.scene.boxes(t), rng) for t in times]
    moving = np.zeros((scenario.scene.height, scenario.scene.width, 3), np.uint8)
    frames = [moving if i % 4 else moving + (i % 8) * 30 for i in range(len(times))]
    cfg = edge_config(
        scenario.camera,
        window={"length_s": 5},
        detector={"kind": "motion", "motion_gating": {"enabled": True, "max_skip_s": 0.3}},
    )
    results, threads = [], []
    for pipelined in (False, True):
        det = _StagedReplay(dets)
        p = CameraPipeline(cfg, "lines", det, pipelined=pipelined)
        envs = [e for f, t in zip(frames, times, strict=True) for e in p.process(f, T0 + t)]
        envs += p.flush(T0 + times[-1] + 0.5)
        p.close()
        results.append(([e.SerializeToString() for e in envs], p.stats.frames_skipped))
        threads.append(det.infer_threads)
        assert p.stats.frames_processed == len(times)
    assert results[0] == results[1]
    assert 0 < results[1][1] < len(times)  # gating skipped some frames, in both modes alike
    assert threads[0] == {threading.current_thread().name}
    assert len(threads[1]) == 1 and threads[1] != threads[0]  # the network ran on the worker


def _parse(raw: bytes) -> pb.Envelope:
    env = pb.Envelope()
    env.ParseFromString(raw)
    return env


class _Failing(_Walker):
    """A walker whose detector fails on the frames at the given indices."""

    def __init__(self, fail_at: set[int]) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.calls = 0

    def detect(self, frame: np.ndarray) -> Detections:
        self.calls += 1
        if self.calls - 1 in self.fail_at:
            raise RuntimeError("inference failed")
        return super().detect(frame)


def test_pipelined_detection_failure_loses_only_that_frame_and_flush_still_closes() -> None:
    det = _Failing({4, 9})  # a frame in the middle and the last one
    cfg = edge_config(CAMERA, detector={"kind": "motion", "motion_gating": {"enabled": False}})
    p = CameraPipeline(cfg, "cam", det, pipelined=True)
    failures = 0
    for i in range(10):
        try:  # the camera worker catches a failure the same way and goes on
            p.process(np.zeros((100, 100, 3), np.uint8), T0 + i / 5)
        except RuntimeError:
            failures += 1
    envs = p.flush(T0 + 2.0)
    p.close()
    assert failures == 1
    assert [e.window.frames_processed for e in envs] == [8]  # all but the two that failed
