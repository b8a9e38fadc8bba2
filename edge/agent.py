"""Composition root of the gateway: config -> outbox, uplink, cameras, health, remote config.

`Agent.run(stop)` blocks until `stop` is set (SIGTERM in the daemon), then shuts down in an
order that loses nothing: cameras stop and flush their open windows into the outbox, the
uplink gets a moment to drain, then it disconnects and the outbox closes. Whatever was not
acknowledged stays in the outbox for the next start.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from edge.camera_worker import (
    CameraPipeline,
    CameraWorker,
    Envelopes,
    FrameSource,
    SourceFactory,
)
from edge.config import CameraConfig, EdgeConfig
from edge.errors import EdgeError
from edge.health import HealthCollector, models_from_manifests
from edge.health.metrics import GatewayCollector
from edge.health.metrics import serve as serve_metrics
from edge.outbox import OutboxError, SqliteOutbox
from edge.remote_config import RemoteConfig, load_saved, restart_sections
from edge.uplink import Backoff, Uplink
from edge.uplink.session import build_uplink, stamp
from protos.mallpulse.v1 import telemetry_pb2

log = logging.getLogger(__name__)

PipelineFactory = Callable[[EdgeConfig, CameraConfig], CameraPipeline]
# Envelopes kept in memory while the outbox cannot store them (a disk hiccup), retried first
# on the next store; beyond this many the oldest are given up and logged.
MAX_UNSTORED = 10_000
UplinkFactory = Callable[["Agent"], Uplink]


class AgentError(EdgeError):
    """The agent could not be assembled from its config."""


def software_version() -> str:
    """The installed mallpulse version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mallpulse")
    except PackageNotFoundError:
        return "0.0.0+unknown"


class Agent:
    """Runs every configured camera, the uplink, health telemetry and remote config."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        pipeline_factory: PipelineFactory,
        source_factory: SourceFactory,
        uplink_factory: UplinkFactory | None = None,
        config_dir: Path | None = None,
        drain_timeout_s: float = 5.0,
        use_saved_config: bool = True,
    ) -> None:
        state_path = config.outbox.path.with_name("remote-config.json")
        if use_saved_config:
            config = load_saved(state_path, config)
        self.config = config
        self.version = software_version()
        self.drain_timeout_s = drain_timeout_s
        self.outbox = SqliteOutbox(
            config.outbox.path,
            max_entries=config.outbox.max_entries,
            max_age_s=config.outbox.max_age_s,
        )
        try:
            self._assemble(
                config, pipeline_factory, source_factory, uplink_factory, config_dir, state_path
            )
        except BaseException:  # the caller may try again (cli: the local config): no open files
            self.outbox.close()
            raise

    def _assemble(
        self,
        config: EdgeConfig,
        pipeline_factory: PipelineFactory,
        source_factory: SourceFactory,
        uplink_factory: UplinkFactory | None,
        config_dir: Path | None,
        state_path: Path,
    ) -> None:
        """Remote config, camera workers, health and uplink around the open outbox."""
        self.remote_config = RemoteConfig(config, self._apply_config, state_path=state_path)
        self.workers = [
            CameraWorker(
                cam,
                pipeline_factory(config, cam),
                source_factory,
                self.store,
                backoff=Backoff(config.uplink.backoff_initial_s, config.uplink.backoff_max_s),
            )
            for cam in config.cameras
            if cam.enabled
        ]
        self.health = HealthCollector(
            config.device,
            outbox_stats=self.outbox.stats,
            cameras=lambda: [w.health() for w in self.workers],
            software_version=self.version,
            models=self._models(config, config_dir),
            config_version=lambda: self.remote_config.current.version,
        )
        self.store_errors = 0
        self._unstored: Envelopes = []
        self._store_lock = threading.Lock()
        self.uplink: Uplink = (uplink_factory or _default_uplink)(self)
        self.metrics_server: WSGIServer | None = None  # /metrics, when health.metrics_port is set

    @staticmethod
    def _models(config: EdgeConfig, config_dir: Path | None) -> list[telemetry_pb2.ModelVersion]:
        manifest = config.detector.manifest
        if manifest is None:
            return []
        if not manifest.is_absolute() and config_dir is not None:
            manifest = config_dir / manifest
        return models_from_manifests([manifest])

    def store(self, envelopes: Envelopes) -> None:
        """Stamp identity into envelopes and store them durably, then wake the uplink.

        If the outbox fails, the envelopes wait in memory and go first with the next store.
        """
        stamp(envelopes, self.config.device)
        with self._store_lock:
            batch = self._unstored + list(envelopes)
            if not batch:
                return
            try:
                self.outbox.put_many(batch)
            except OutboxError:
                self.store_errors += 1
                lost = max(0, len(batch) - MAX_UNSTORED)
                self._unstored = batch[lost:]
                log.exception(
                    "could not store envelopes; keeping them in memory",
                    extra={"waiting": len(self._unstored), "given_up": lost},
                )
                return
            self._unstored = []
        self.uplink.notify()

    def handle_config(self, payload: bytes) -> bytes | None:
        """Decide on a pushed config; returns the JSON verdict to publish, if any."""
        verdict = self.remote_config.handle(payload)
        return verdict.to_json() if verdict is not None else None

    def _apply_config(self, old: EdgeConfig, new: EdgeConfig) -> list[str]:
        by_id = {cam.id: cam for cam in new.cameras}
        for worker in self.workers:
            cam = by_id.get(worker.camera.id)
            if cam is not None and cam != worker.camera:
                worker.update_camera(cam)
        return restart_sections(old, new)

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set, then shut down without losing a window."""
        log.info(
            "agent starting",
            extra={"cameras": [w.camera.id for w in self.workers], "version": self.version},
        )
        self.uplink.start()
        self._serve_metrics()
        for worker in self.workers:
            worker.start()
        interval = self.config.health.interval_s
        next_health = time.monotonic() + interval
        try:
            while not stop.wait(min(1.0, max(0.0, next_health - time.monotonic()))):
                if time.monotonic() >= next_health:
                    next_health += interval
                    self._report_health()
        finally:  # whatever ends the loop, the open windows are flushed into the outbox
            self.shutdown()

    def _serve_metrics(self) -> None:
        port = self.config.health.metrics_port
        if port is None:
            return
        collector = GatewayCollector(
            outbox=self.outbox.stats,
            cameras=lambda: [w.metric_sample() for w in self.workers],
            uplink=lambda: getattr(self.uplink, "stats", None),
        )
        self.metrics_server = serve_metrics(port, collector)[0]

    def _depth(self) -> int | None:
        try:
            return self.outbox.stats().depth
        except OutboxError:
            return None

    def _report_health(self) -> None:
        try:
            envelope = self.health.envelope()
        except Exception:  # e.g. an unreadable outbox: say so, keep the cameras running
            log.exception("health sample failed")
            return
        self.store([envelope])

    def shutdown(self) -> None:
        """Stop cameras (flushing open windows), drain briefly, stop the uplink, close."""
        log.info("agent stopping")
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            if not worker.join(10.0):
                log.error("camera thread did not stop", extra={"camera_id": worker.camera.id})
        self.store([])  # a last try for envelopes an outbox error kept in memory
        deadline = time.monotonic() + self.drain_timeout_s
        while self.uplink.connected and time.monotonic() < deadline:
            if self._depth() == 0:
                break
            time.sleep(0.05)
        self.uplink.stop()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        depth = self._depth()
        self.outbox.close()
        log.info("agent stopped", extra={"outbox_depth": depth})


def _default_uplink(agent: Agent) -> Uplink:
    return build_uplink(
        agent.config,
        agent.outbox,
        software_version=agent.version,
        on_config=agent.handle_config,
        config_version=lambda: agent.remote_config.current.version,
    )


def _vision_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise AgentError(f"the vision pipeline module '{name}' is not available: {exc}") from exc


def load_factory(spec: str) -> Any:
    """Call MODULE:CALLABLE (no arguments) and return what it gives: a factory."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise AgentError(f"expected MODULE:CALLABLE, got '{spec}'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise AgentError(f"cannot load '{spec}': {exc}") from exc
    return target()


def default_pipeline_factory(base_dir: Path) -> PipelineFactory:
    """Builds edge.pipeline pipelines per camera (model paths relative to `base_dir`)."""
    module = _vision_module("edge.pipeline")

    def make(config: EdgeConfig, camera: CameraConfig) -> CameraPipeline:
        pipeline: CameraPipeline = module.build_pipeline(
            config, camera.id, base_dir=base_dir, pipelined=config.detector.pipelined
        )
        return pipeline

    return make


class EpochSource:
    """Adapts an edge.capture source to epoch timestamps; paces file playback to real time.

    Live sources give monotonic time (plus `epoch_offset`); files give stream time from 0,
    which the daemon maps onto the wall clock from the moment the file was opened, sleeping
    so that a file behaves like a camera (windows then close on wall-clock boundaries).
    """

    def __init__(self, inner: Any, *, paced: bool) -> None:
        self.inner = inner
        self._paced = paced
        self._stop = threading.Event()

    @property
    def dropped(self) -> int:
        """Frames the source dropped (frame-rate cap, slow consumer)."""
        return int(getattr(self.inner, "dropped", 0))

    @property
    def reconnects(self) -> int:
        """Reconnects a live source made on its own (files: 0)."""
        return int(getattr(self.inner, "reconnects", 0))

    @property
    def connected(self) -> bool | None:
        """Whether a live source has its stream now; None when the source cannot tell."""
        value = getattr(self.inner, "connected", None)
        return bool(value) if value is not None else None

    def stop(self) -> None:
        """Stop the wrapped source."""
        self._stop.set()
        self.inner.stop()

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        """Frames with epoch timestamps."""
        offset = getattr(self.inner, "epoch_offset", None)
        started = time.time()
        for frame, t in self.inner:
            if offset is not None and not self._paced:
                yield frame, t + offset
                continue
            if self._paced and self._stop.wait(max(0.0, started + t - time.time())):
                return
            yield frame, started + t


def default_source_factory(base_dir: Path | None = None) -> SourceFactory:
    """Opens edge.capture sources (file, RTSP/HTTP, USB); file paths relative to `base_dir`."""
    module = _vision_module("edge.capture")

    def make(camera: CameraConfig) -> FrameSource:
        source = camera.source
        is_file = not source.startswith(module.LIVE_PREFIXES)
        if is_file and base_dir is not None and not Path(source).is_absolute():
            source = str(base_dir / source)
        inner = module.open_source(
            source, max_fps=camera.max_fps, stall_timeout_s=camera.stall_timeout_s, loop=camera.loop
        )
        return EpochSource(inner, paced=is_file)

    return make
