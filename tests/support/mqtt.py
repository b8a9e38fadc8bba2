"""A private Mosquitto that tests stop and restart, and a minimal cloud acknowledging envelopes.

`AckResponder` stands in for the ingest where a test needs no database: it subscribes to the
devices' window and health topics and answers each envelope with a `DeliveryAck` on the
device's `ack` topic, as the ingest does after its commit (cloud/ingest/delivery.py).
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protos.mallpulse.v1 import delivery_pb2, telemetry_pb2

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `cond` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Broker:
    """A private Mosquitto with persistence on a free port that can be stopped and started."""

    def __init__(self, workdir: Path) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.fail(f"mosquitto binary not found at {MOSQUITTO}")
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 100000\n"
            f"user {getpass.getuser()}\n"  # as root, mosquitto would switch user and not save
            "log_dest none\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): the broker saves sessions and queued messages."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def ack_for(topic: str, payload: bytes) -> tuple[str, bytes]:
    """(ack topic, DeliveryAck) answering one envelope published on a window/health topic."""
    env = telemetry_pb2.Envelope.FromString(payload)
    base = topic.rpartition("/")[0]
    ack = delivery_pb2.DeliveryAck(device_id=env.device_id)
    ack.ranges.add(first=env.sequence, last=env.sequence)
    return f"{base}/ack", ack.SerializeToString()


class AckResponder:
    """Subscribes to every device's envelopes under `prefix` and acknowledges each one."""

    def __init__(
        self,
        port: int,
        prefix: str,
        *,
        host: str = "127.0.0.1",
        share: str | None = None,
        reconnect_s: int = 1,
    ) -> None:
        self.seen: list[telemetry_pb2.Envelope] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"acker-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(reconnect_s, reconnect_s)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        base = f"$share/{share}/{prefix}" if share else prefix  # shared: as the ingest does
        topics = [(f"{base}/+/+/{kind}", 1) for kind in ("window", "health")]
        self.connects = 0
        self.client.on_connect = self._on_connect
        self._topics = topics
        self.client.on_subscribe = lambda *_: subscribed.set()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect(host, port, clean_start=False, properties=props)
        self.client.loop_start()
        assert subscribed.wait(10), "ack responder: no SUBACK"

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        self.connects += 1
        client.subscribe(self._topics)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        with self.lock:
            self.seen.append(telemetry_pb2.Envelope.FromString(payload))
        client.publish(*ack_for(msg.topic, payload), qos=1)

    def sequences(self) -> list[int]:
        """Sequences received, in arrival order (copies included)."""
        with self.lock:
            return [e.sequence for e in self.seen]

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
