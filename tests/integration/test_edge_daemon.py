"""The daemon as a real subprocess (`python -m mallpulse edge run`) on the machine's broker.

The camera side is a small fake (a frame ticker and a pipeline that closes a window every few
frames), loaded through `--pipeline/--source`, so these tests exercise the agent, outbox,
uplink, signals and logs without the vision stack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.outbox import SqliteOutbox
from protos.mallpulse.v1 import telemetry_pb2
from tests.support.mqtt import ack_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOOR = [[0.0, 0.5], [1.0, 0.5]]

FAKES = '''
"""Fake camera side for daemon tests: frames every 10 ms, a window every 3 frames."""
import threading
import time

from protos.mallpulse.v1 import telemetry_pb2


class Ticker:
    def __init__(self):
        self._stop = threading.Event()

    def __iter__(self):
        while not self._stop.is_set():
            yield object(), time.time()
            time.sleep(0.01)

    def stop(self):
        self._stop.set()


class Pipeline:
    def __init__(self, camera):
        self.camera = camera
        self.frames = 0
        self.stats = {"frames_processed": 0, "detector_latency_ms": 1.5}

    def _window(self, line_ids):
        env = telemetry_pb2.Envelope(camera_id=self.camera.id)
        env.window.frames_processed = self.frames
        for line_id in line_ids:
            env.window.lines.add(line_id=line_id, in_count=1)
        return env

    def process(self, frame, t):
        self.frames += 1
        self.stats["frames_processed"] = self.frames
        if self.frames % 3 == 0:
            return [self._window([line.id for line in self.camera.lines])]
        return []

    def flush(self, t):
        return [self._window(["flushed"])]

    def update_camera(self, camera):
        self.camera = camera


def pipeline_factory():
    return lambda config, camera: Pipeline(camera)


def source_factory():
    return lambda camera: Ticker()
'''


def wait_until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Collector:
    """Cloud-side subscriber on the machine broker recording envelopes by topic kind."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.envelopes: list[telemetry_pb2.Envelope] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe([(f"{prefix}/+/+/{kind}", 1) for kind in ("window", "health")])
        self.client.loop_start()
        # messages published before the SUBACK would never reach this subscriber
        assert subscribed.wait(10), "collector: no SUBACK"

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.envelopes.append(telemetry_pb2.Envelope.FromString(bytes(msg.payload)))
        client.publish(*ack_for(msg.topic, bytes(msg.payload)), qos=1)  # as the ingest does

    def unique(self) -> list[telemetry_pb2.Envelope]:
        with self.lock:
            envs = list(self.envelopes)
        seen: set[int] = set()
        out = []
        for env in envs:
            if env.sequence not in seen:
                seen.add(env.sequence)
                out.append(env)
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def clear_retained(host: str, port: int, topic: str) -> None:
    """Remove a retained message the test left on the shared broker."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(host, port)
    client.loop_start()
    client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def daemon_env(
    tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> Iterator[dict[str, Any]]:
    (tmp_path / "daemon_fakes.py").write_text(FAKES)
    host, port = mqtt_broker
    device = f"gw-{uuid.uuid4().hex[:8]}"
    config = {
        "version": 1,
        "device": {"device_id": device, "store_id": "store-d"},
        "cameras": [
            {
                "id": "cam1",
                "source": "fake://1",
                "lines": [{"id": "door", "points": [[0, 0.5], [1, 0.5]]}],
            },
            {"id": "cam2", "source": "fake://2"},
        ],
        "uplink": {
            "transport": "mqtt",
            "mqtt": {
                "host": host,
                "port": port,
                "topic_prefix": mqtt_prefix,
                "max_inflight": 5,
                "session_expiry_s": 0,  # no session left behind on the shared broker
            },
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
        },
        "outbox": {"path": str(tmp_path / "state" / "outbox.db")},
        "health": {"interval_s": 1.0},
    }
    cfg_path = tmp_path / "edge.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    yield {"config": cfg_path, "env": env, "outbox": tmp_path / "state" / "outbox.db"}
    clear_retained(host, port, f"{mqtt_prefix}/store-d/{device}/status")


def start_daemon(d: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mallpulse", "edge", "run", "--config", str(d["config"])]
    cmd += [
        "--pipeline",
        "daemon_fakes:pipeline_factory",
        "--source",
        "daemon_fakes:source_factory",
    ]
    with log.open("ab") as fh:
        return subprocess.Popen(cmd, env=d["env"], cwd=REPO, stdout=fh, stderr=fh)


@pytest.fixture
def collector(mqtt_broker: tuple[str, int], mqtt_prefix: str) -> Iterator[Collector]:
    c = Collector(*mqtt_broker, mqtt_prefix)
    yield c
    c.close()


def test_sigkill_mid_stream_loses_nothing_and_outbox_stays_intact(
    daemon_env: dict[str, Any], collector: Collector, tmp_path: Path
) -> None:
    log = tmp_path / "daemon.log"
    proc = start_daemon(daemon_env, log)
    try:
        wait_until(lambda: len(collector.unique()) >= 30, what="first envelopes")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        outbox = SqliteOutbox(daemon_env["outbox"])  # runs PRAGMA quick_check on open
        killed_at = outbox.stats().last_sequence
        outbox.close()
        proc = start_daemon(daemon_env, log)
        wait_until(
            lambda: len(collector.unique()) >= killed_at + 20, what="envelopes after restart"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    outbox = SqliteOutbox(daemon_env["outbox"])
    stats = outbox.stats()
    leftover = {e.sequence for e in outbox.peek(limit=10_000)}
    outbox.close()
    seen = {e.sequence for e in collector.unique()}
    # Every sequence ever handed out was delivered or is still waiting in the outbox.
    assert seen | leftover == set(range(1, stats.last_sequence + 1))
    assert killed_at < stats.last_sequence


def test_sigterm_flushes_the_open_window_and_logs_json(
    daemon_env: dict[str, Any], collector: Collector, tmp_path: Path
) -> None:
    log = tmp_path / "daemon.log"
    proc = start_daemon(daemon_env, log)
    try:
        wait_until(lambda: len(collector.unique()) >= 5, what="first envelopes")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until(
        lambda: sum(1 for e in collector.unique() if _is_flush(e)) == 2, what="flushed windows"
    )
    flushed = {e.camera_id for e in collector.unique() if _is_flush(e)}
    assert flushed == {"cam1", "cam2"}
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert {"agent starting", "agent stopped"} <= {r["message"] for r in records}
    assert all({"ts", "level", "logger", "device_id"} <= r.keys() for r in records)


def _is_flush(env: telemetry_pb2.Envelope) -> bool:
    return [line.line_id for line in env.window.lines] == ["flushed"]


def test_invalid_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "device: {device_id: gw, store_id: st}\ncameras: [{id: c, source: x, max_fps: -1}]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mallpulse", "edge", "run", "--config", str(bad)],
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cameras[0].max_fps" in proc.stderr.decode()


def test_unloadable_pipeline_exits_1_with_a_message(daemon_env: dict[str, Any]) -> None:
    cmd = [sys.executable, "-m", "mallpulse", "edge", "run", "--config", str(daemon_env["config"])]
    cmd += ["--pipeline", "no_such_module:factory", "--source", "daemon_fakes:source_factory"]
    proc = subprocess.run(cmd, capture_output=True, env=daemon_env["env"], cwd=REPO, timeout=60)
    assert proc.returncode == 1
    assert "ERROR cannot load 'no_such_module:factory'" in proc.stderr.decode()


def test_replay_output_is_published_through_the_outbox_and_uplink(
    daemon_env: dict[str, Any], collector: Collector, tmp_path: Path, shared_file: Any
) -> None:
    video = shared_file("data/video/people-detection.gif")
    config = yaml.safe_load(daemon_env["config"].read_text())
    config["detector"] = {"kind": "motion"}
    config["window"] = {"length_s": 5}
    config["cameras"][0]["source"] = str(video)
    daemon_env["config"].write_text(yaml.safe_dump(config))
    out = tmp_path / "windows.jsonl"
    base = [sys.executable, "-m", "mallpulse", "edge"]
    replay = subprocess.run(
        [*base, "replay", str(video), "--config", str(daemon_env["config"]), "--out", str(out)],
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr.decode()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines
    bad = tmp_path / "bad.jsonl"
    bad.write_text(out.read_text() + '{"window": {"frames_processed": "many"}}\n')
    cmd = [*base, "publish", "--config", str(daemon_env["config"])]
    rejected = subprocess.run([*cmd, str(bad)], capture_output=True, cwd=REPO, timeout=60)
    assert rejected.returncode == 2
    assert f"bad.jsonl:{len(lines) + 1}" in rejected.stderr.decode()
    sent = subprocess.run([*cmd, str(out)], capture_output=True, cwd=REPO, timeout=60)
    assert sent.returncode == 0, sent.stderr.decode()
    assert f"stored {len(lines)} envelopes (sequences 1-{len(lines)}); 0 still queued" in (
        sent.stdout.decode()
    )
    wait_until(lambda: len(collector.unique()) == len(lines), what="published windows")
    got = collector.unique()
    assert [e.sequence for e in got] == list(range(1, len(lines) + 1))
    assert [e.window.frames_processed for e in got] == [
        int(line["window"].get("frames_processed", 0)) for line in lines
    ]
