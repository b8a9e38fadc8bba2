"""Unit tests of the agent composition root with a fake camera side and no uplink."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.agent import Agent, AgentError, EpochSource, default_source_factory, load_factory
from edge.camera_worker import CameraWorker
from edge.config import CameraConfig, EdgeConfig
from edge.outbox import OutboxError, SqliteOutbox
from protos.mallpulse.v1 import telemetry_pb2


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Ticker:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self.dropped = 2  # as if the frame-rate cap had dropped two frames

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        while not self._stop.is_set():
            yield object(), time.time()
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()


class Broken:
    """A camera that cannot be opened."""

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        raise ConnectionError("rtsp: 404")

    def stop(self) -> None:
        pass


class Stalled:
    """A camera that connects and then never delivers a frame until stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        self._stop.wait()
        return iter(())

    def stop(self) -> None:
        self._stop.set()


class Pipeline:
    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self.frames = 0
        self.updates: list[CameraConfig] = []
        self.flushed = self.closed = False
        self.stats = {"frames_skipped": 5, "detector_latency_ms": 4.5}

    def _env(self, tag: str) -> telemetry_pb2.Envelope:
        env = telemetry_pb2.Envelope(camera_id=self.camera.id)
        env.window.lines.add(line_id=tag)
        return env

    def process(self, frame: Any, t: float) -> list[telemetry_pb2.Envelope]:
        self.frames += 1
        return [self._env("w")] if self.frames % 10 == 0 else []

    def flush(self, t: float) -> list[telemetry_pb2.Envelope]:
        self.flushed = True
        return [self._env("flush")]

    def close(self) -> None:
        assert self.flushed, "close before flush would drop the frame in flight"
        self.closed = True

    def update_camera(self, camera: CameraConfig) -> None:
        self.updates.append(camera)
        self.camera = camera


def config(tmp_path: Path, version: int = 1) -> EdgeConfig:
    return EdgeConfig.model_validate(
        {
            "version": version,
            "device": {"device_id": "gw", "store_id": "st"},
            "cameras": [{"id": "good", "source": "a"}, {"id": "bad", "source": "b"}],
            "uplink": {"transport": "none", "backoff_initial_s": 0.01, "backoff_max_s": 0.05},
            "outbox": {"path": str(tmp_path / "state" / "outbox.db")},
        }
    )


def make_agent(tmp_path: Path, version: int = 1) -> Agent:
    return Agent(
        config(tmp_path, version),
        pipeline_factory=lambda cfg, cam: Pipeline(cam),
        source_factory=lambda cam: Broken() if cam.id == "bad" else Ticker(),
        drain_timeout_s=0.0,
    )


def test_cameras_run_independently_and_shutdown_flushes(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    wait_until(lambda: agent.workers[0].frames >= 30 and agent.workers[1].reconnects >= 2)
    good, bad = (w.health() for w in agent.workers)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert good.connected and good.fps > 0 and good.frames_dropped == 2
    assert good.detector_latency_ms == 4.5
    assert not bad.connected and bad.reconnects >= 2
    outbox = SqliteOutbox(tmp_path / "state" / "outbox.db")
    envs = [telemetry_pb2.Envelope.FromString(e.payload) for e in outbox.peek(limit=1000)]
    outbox.close()
    assert all((e.device_id, e.store_id) == ("gw", "st") for e in envs)
    assert [e.sequence for e in envs] == list(range(1, len(envs) + 1))
    flushed = sorted(e.camera_id for e in envs if e.window.lines[0].line_id == "flush")
    assert flushed == ["bad", "good"]  # every camera closes its open window
    # and then releases its pipeline (a pipelined one owns a detection thread)
    assert all(isinstance(w.pipeline, Pipeline) and w.pipeline.closed for w in agent.workers)


def test_remote_geometry_reaches_the_camera_thread(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    new = config(tmp_path, version=2).model_dump(mode="json")
    new["cameras"][0]["lines"] = [{"id": "door", "points": [[0, 0.5], [1, 0.5]]}]
    reply = agent.handle_config(json.dumps(new).encode())
    pipeline = agent.workers[0].pipeline
    assert isinstance(pipeline, Pipeline)
    wait_until(lambda: bool(pipeline.updates))
    stop.set()
    thread.join(10)
    assert reply is not None and json.loads(reply)["accepted"] is True
    assert [line.id for line in pipeline.camera.lines] == ["door"]
    # After a restart the saved remote config (version 2) wins over the local file.
    assert make_agent(tmp_path).config.version == 2


def test_load_factory_errors_are_clear() -> None:
    with pytest.raises(AgentError, match="MODULE:CALLABLE"):
        load_factory("nocolon")
    with pytest.raises(AgentError, match="cannot load"):
        load_factory("edge.no_such_module:make")
    assert load_factory("builtins:list") == []  # the callable is called, its result returned


def test_a_stalled_camera_does_not_hold_up_the_others(tmp_path: Path) -> None:
    agent = Agent(
        config(tmp_path),
        pipeline_factory=lambda cfg, cam: Pipeline(cam),
        source_factory=lambda cam: Stalled() if cam.id == "bad" else Ticker(),
        drain_timeout_s=0.0,
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    wait_until(lambda: agent.workers[0].frames >= 50)
    assert agent.workers[1].frames == 0
    stop.set()
    thread.join(10)
    assert not thread.is_alive()  # stop() released the stalled read; shutdown completed


class Inner:
    """A stand-in for an edge.capture source: stream timestamps 0, 0.05, 0.10, ..."""

    def __init__(self, n: int, epoch_offset: float | None = None) -> None:
        self.n = n
        self.dropped = 3
        self.stopped = False
        if epoch_offset is not None:
            self.epoch_offset = epoch_offset

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        for i in range(self.n):
            yield i, i * 0.05

    def stop(self) -> None:
        self.stopped = True


def test_epoch_source_maps_live_and_file_time_to_the_wall_clock() -> None:
    live = list(EpochSource(Inner(3, epoch_offset=1_000.0), paced=False))
    assert [t for _, t in live] == [1_000.0, 1_000.05, 1_000.1]
    before = time.time()
    src = EpochSource(Inner(5), paced=True)
    frames = list(src)
    after = time.time()
    assert [f for f, _ in frames] == [0, 1, 2, 3, 4]
    assert before <= frames[0][1] <= frames[-1][1] <= after
    assert frames[-1][1] - frames[0][1] == pytest.approx(0.2)
    assert after - before >= 0.19  # paced: a 0.2 s clip takes 0.2 s
    assert src.dropped == 3
    src.stop()
    assert src.inner.stopped


def test_default_source_factory_opens_files_relative_to_the_config(
    tmp_path: Path, shared_file: Any
) -> None:
    import shutil

    shutil.copy(shared_file("data/video/people-detection.gif"), tmp_path / "clip.gif")
    cam = CameraConfig(id="c", source="clip.gif", max_fps=100)
    source = default_source_factory(tmp_path)(cam)
    frame, t = next(iter(source))
    source.stop()
    assert frame.shape[2] == 3
    assert abs(t - time.time()) < 5


def test_full_outbox_drops_oldest_reports_it_and_the_agent_runs_on(tmp_path: Path) -> None:
    doc = config(tmp_path).model_dump(mode="json")
    doc["outbox"]["max_entries"] = 10
    agent = Agent(
        EdgeConfig.model_validate(doc),
        pipeline_factory=lambda cfg, cam: Pipeline(cam),
        source_factory=lambda cam: Ticker(),
        drain_timeout_s=0.0,
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: agent.outbox.stats().dropped_total >= 10)
        report = agent.health.envelope()  # what the health timer stores every interval
        frames = agent.workers[0].frames
        wait_until(lambda: agent.workers[0].frames > frames + 20)  # the cameras carry on
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert report.health.outbox_dropped_total >= 10
    assert report.health.outbox_depth == 10
    outbox = SqliteOutbox(tmp_path / "state" / "outbox.db")
    stats = outbox.stats()
    kept = [e.sequence for e in outbox.peek(limit=100)]
    outbox.close()
    assert stats.depth == 10
    assert kept == list(range(stats.last_sequence - 9, stats.last_sequence + 1))  # the newest
    assert stats.dropped_total == stats.last_sequence - 10


def test_envelopes_wait_in_memory_while_the_outbox_fails(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    real_put = agent.outbox.put_many
    failures = [OutboxError("disk full (injected)")] * 2

    def flaky_put(batch: Any) -> list[int]:
        if failures:
            raise failures.pop()
        return real_put(batch)

    agent.outbox.put_many = flaky_put  # type: ignore[method-assign,assignment]
    for tag in ("a", "b", "c"):
        env = telemetry_pb2.Envelope(camera_id="good")
        env.window.lines.add(line_id=tag)
        agent.store([env])
    entries = agent.outbox.peek(limit=10)
    agent.outbox.close()
    assert agent.store_errors == 2
    got = [telemetry_pb2.Envelope.FromString(e.payload) for e in entries]
    assert [(e.sequence, e.window.lines[0].line_id) for e in got] == [(1, "a"), (2, "b"), (3, "c")]


class Live(Ticker):
    """A live source that says it lost its stream and reconnected four times on its own."""

    connected = False
    reconnects = 4


def test_camera_health_takes_link_state_from_a_live_source() -> None:
    cam = CameraConfig(id="live", source="rtsp://cam")
    pipeline = Pipeline(cam)
    worker = CameraWorker(cam, pipeline, lambda c: Live(), lambda envs: None)
    worker.start()
    try:
        wait_until(lambda: worker.frames > 5)
        health = worker.health()
    finally:
        worker.stop()
        worker.join(5)
    assert (health.connected, health.reconnects, health.frames_dropped) == (False, 4, 2)
    src = EpochSource(Live(), paced=False)
    assert (src.connected, src.reconnects, src.dropped) == (False, 4, 2)
    assert EpochSource(Inner(1), paced=False).connected is None


def test_a_finite_source_is_played_once_then_the_camera_flushes_and_ends() -> None:
    """A file without `loop` must not be replayed (that would count the same people again)."""
    cam = CameraConfig(id="file", source="clip.mp4")
    pipeline = Pipeline(cam)
    opened: list[int] = []

    class Clip(Ticker):
        def __iter__(self) -> Iterator[tuple[Any, float]]:
            opened.append(1)
            return iter([(object(), float(i)) for i in range(3)])

    stored: list[telemetry_pb2.Envelope] = []
    worker = CameraWorker(cam, pipeline, lambda c: Clip(), stored.extend)
    worker.start()
    try:
        assert worker.join(5), "the camera thread kept running after its file ended"
    finally:
        worker.stop()
        worker.join(5)
    assert (opened, worker.frames, pipeline.frames) == ([1], 3, 3)
    assert pipeline.flushed and pipeline.closed
    assert [e.window.lines[0].line_id for e in stored] == ["flush"]


def _open_files(path: Path) -> list[str]:
    """Descriptors of this process open on `path` (or its WAL and shared-memory files)."""
    fds = Path("/proc/self/fd")
    targets = [str(fd.readlink()) for fd in fds.iterdir() if fd.is_symlink()]
    return [t for t in targets if t.startswith(str(path))]


def test_an_agent_that_cannot_be_assembled_closes_its_outbox(tmp_path: Path) -> None:
    """The cli builds a second agent on the same outbox when the first fails: no leftovers."""

    def no_model(cfg: EdgeConfig, cam: CameraConfig) -> Pipeline:
        if cam.id == "bad":
            raise AgentError("model file missing")
        return Pipeline(cam)

    db = tmp_path / "state" / "outbox.db"
    # `failed` keeps the traceback, and so the half-built agent, alive: nothing is collected
    with pytest.raises(AgentError, match="model file missing") as failed:
        Agent(config(tmp_path), pipeline_factory=no_model, source_factory=lambda cam: Ticker())
    assert _open_files(db) == [], failed.value


class SickStats(Pipeline):
    """A pipeline whose health counters fail to read (a bug in a stats source)."""

    @property
    def stats(self) -> dict[str, float]:
        raise RuntimeError("stats unavailable")

    @stats.setter
    def stats(self, value: dict[str, float]) -> None:
        pass


def test_a_failing_health_sample_neither_stops_the_agent_nor_loses_windows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doc = config(tmp_path).model_dump(mode="json")
    doc["health"] = {"interval_s": 1.0}
    agent = Agent(
        EdgeConfig.model_validate(doc),
        pipeline_factory=lambda cfg, cam: SickStats(cam),
        source_factory=lambda cam: Ticker(),
        drain_timeout_s=0.0,
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        with pytest.raises(RuntimeError, match="stats unavailable"):
            agent.health.envelope()  # what the health timer runs every second
        failed = "health sample failed"
        wait_until(lambda: any(r.getMessage() == failed for r in caplog.records))
        frames = agent.workers[0].frames
        wait_until(lambda: agent.workers[0].frames > frames + 5)  # the cameras carry on
        assert thread.is_alive(), "the agent loop died on a failing health sample"
    finally:
        stop.set()
        thread.join(10)
    outbox = SqliteOutbox(tmp_path / "state" / "outbox.db")
    envs = [telemetry_pb2.Envelope.FromString(e.payload) for e in outbox.peek(limit=10_000)]
    outbox.close()
    assert sorted(e.camera_id for e in envs if e.window.lines[0].line_id == "flush") == [
        "bad",
        "good",
    ]
