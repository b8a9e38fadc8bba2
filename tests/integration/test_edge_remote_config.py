"""Remote config over the machine's Mosquitto: live geometry swap, rejections, bad input.

The agent runs in-process with a fake camera side (a frame ticker and a pipeline that reports
the ids of the lines it currently counts on), so a config change is visible in the windows.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import Agent
from edge.config import CameraConfig, EdgeConfig
from protos.mallpulse.v1 import telemetry_pb2
from tests.support.mqtt import ack_for

pytestmark = pytest.mark.integration


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Ticker:
    """Frames every 10 ms until stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        while not self._stop.is_set():
            yield object(), time.time()
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()


class LinePipeline:
    """Closes a window every 5 frames naming the lines of its current geometry."""

    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self.frames = 0
        self.stats = {"frames_processed": 0}

    def process(self, frame: Any, t: float) -> list[telemetry_pb2.Envelope]:
        self.frames += 1
        if self.frames % 5:
            return []
        env = telemetry_pb2.Envelope(camera_id=self.camera.id)
        for line in self.camera.lines:
            env.window.lines.add(line_id=line.id, in_count=1)
        env.window.frames_processed = self.frames
        return [env]

    def flush(self, t: float) -> list[telemetry_pb2.Envelope]:
        return []

    def update_camera(self, camera: CameraConfig) -> None:
        self.camera = camera


def config_doc(version: int, line_id: str, points: list[list[float]], **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": version,
        "device": kw["device"],
        "cameras": [
            {"id": "entrance", "source": "fake://1", "lines": [{"id": line_id, "points": points}]}
        ],
        "uplink": kw["uplink"],
        "outbox": kw["outbox"],
        "health": {"interval_s": 60},
    }
    return doc


class Cloud:
    """Publishes configs, records the device's windows and config verdicts, and acknowledges
    every envelope after "storing" it, as the ingest does (so the agent's outbox drains)."""

    def __init__(self, host: str, port: int, base: str) -> None:
        self.base = base
        self.verdicts: list[dict[str, Any]] = []
        self.windows: list[telemetry_pb2.Envelope] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(f"{base}/config/status", qos=1)
        self.client.subscribe(f"{base}/window", qos=1)
        self.client.subscribe(f"{base}/health", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            if msg.topic.endswith("/config/status"):
                if msg.payload:
                    self.verdicts.append(json.loads(msg.payload))
                return
            if msg.topic.endswith("/window"):
                self.windows.append(telemetry_pb2.Envelope.FromString(bytes(msg.payload)))
        self.client.publish(*ack_for(msg.topic, bytes(msg.payload)), qos=1)

    def push(self, payload: bytes) -> dict[str, Any]:
        """Publish a retained config document and wait for the device's verdict."""
        before = len(self.verdicts)
        self.client.publish(f"{self.base}/config", payload, qos=1, retain=True).wait_for_publish(5)
        wait_until(lambda: len(self.verdicts) > before, what="config verdict")
        with self.lock:
            return self.verdicts[-1]

    def lines_after(self, sequence: int) -> set[str]:
        with self.lock:
            return {
                line.line_id
                for env in self.windows
                if env.sequence > sequence
                for line in env.window.lines
            }

    def last_sequence(self) -> int:
        with self.lock:
            return max((e.sequence for e in self.windows), default=0)

    def close(self) -> None:
        for kind in ("config", "config/status", "status"):
            self.client.publish(f"{self.base}/{kind}", b"", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def running(
    tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> Iterator[tuple[Agent, Cloud, dict[str, Any]]]:
    host, port = mqtt_broker
    device = {"device_id": f"gw-{uuid.uuid4().hex[:8]}", "store_id": "store-rc"}
    parts = {
        "device": device,
        "uplink": {
            "mqtt": {
                "host": host,
                "port": port,
                "topic_prefix": mqtt_prefix,
                "session_expiry_s": 0,  # no session left behind on the shared broker
            },
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
        },
        "outbox": {"path": str(tmp_path / "outbox.db")},
    }
    config = EdgeConfig.model_validate(config_doc(1, "door", [[0.0, 0.5], [1.0, 0.5]], **parts))
    cloud = Cloud(host, port, f"{mqtt_prefix}/store-rc/{device['device_id']}")
    agent = Agent(
        config,
        pipeline_factory=lambda cfg, cam: LinePipeline(cam),
        source_factory=lambda cam: Ticker(),
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: "door" in cloud.lines_after(0), what="first windows")
        yield agent, cloud, parts
    finally:
        stop.set()
        thread.join(20)
        cloud.close()
    assert not thread.is_alive()


def test_valid_config_changes_the_counting_line_live(
    running: tuple[Agent, Cloud, dict[str, Any]],
) -> None:
    agent, cloud, parts = running
    new = config_doc(2, "door-moved", [[0.0, 0.7], [1.0, 0.7]], **parts)
    verdict = cloud.push(json.dumps(new).encode())
    assert verdict == {"version": 2, "accepted": True, "field": "", "reason": ""}
    mark = cloud.last_sequence()
    wait_until(lambda: "door-moved" in cloud.lines_after(mark), what="windows with the new line")
    pipeline = agent.workers[0].pipeline
    assert isinstance(pipeline, LinePipeline)
    assert pipeline.camera.lines[0].points == [(0.0, 0.7), (1.0, 0.7)]
    assert agent.remote_config.current.version == 2
    # A saved copy lets a restart come back with version 2.
    assert json.loads((Path(parts["outbox"]["path"]).parent / "remote-config.json").read_text())


def test_invalid_config_is_rejected_naming_the_field_and_old_one_stays(
    running: tuple[Agent, Cloud, dict[str, Any]],
) -> None:
    agent, cloud, parts = running
    bad = config_doc(3, "door-bad", [[1.5, 0.5], [0.2, 0.5]], **parts)
    verdict = cloud.push(json.dumps(bad).encode())
    assert verdict["accepted"] is False
    assert verdict["version"] == 3
    assert verdict["field"].startswith("cameras[0].lines[0].points")
    assert "less than or equal to 1" in verdict["reason"]
    mark = cloud.last_sequence()
    wait_until(lambda: bool(cloud.lines_after(mark)), what="windows after the rejection")
    assert cloud.lines_after(mark) == {"door"}
    assert agent.remote_config.current.version == 1


@pytest.mark.parametrize(
    ("payload", "field", "reason_part"),
    [
        (b"{not json", "", "not valid JSON"),
        (b"\xff\xfe\x00", "", "not UTF-8"),
        (b"[1, 2, 3]", "", "expected a JSON object"),
        (json.dumps({"version": "x", "device": 5}).encode(), "version", "valid integer"),
        (json.dumps({"version": 9, "device": 5}).encode(), "device", "valid dictionary"),
        (b'{"pad": "' + b"x" * 300_000 + b'"}', "", "exceeds"),
        (b"[" * 100_000 + b"]" * 100_000, "", "not valid JSON"),
    ],
    ids=["not-json", "not-utf8", "array", "wrong-type", "wrong-type-2", "huge", "deep-nesting"],
)
def test_bad_input_on_config_topic_is_rejected_without_crash(
    running: tuple[Agent, Cloud, dict[str, Any]], payload: bytes, field: str, reason_part: str
) -> None:
    agent, cloud, _ = running
    verdict = cloud.push(payload)
    assert verdict["accepted"] is False
    assert verdict["field"] == field
    assert reason_part in verdict["reason"]
    mark = cloud.last_sequence()
    wait_until(lambda: "door" in cloud.lines_after(mark), what="agent still producing")
    assert agent.remote_config.current.version == 1
