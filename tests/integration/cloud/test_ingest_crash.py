"""An ingest process killed (SIGKILL) under load and restarted: nothing lost, nothing doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.db.repositories.devices import create_device, create_store
from cloud.simulator.envelopes import window_envelope

REPO = Path(__file__).resolve().parents[3]
N = 600  # below Mosquitto's default max_queued_messages (1000) for an offline session


def _spawn(env: dict[str, str], instance: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mallpulse", "cloud", "ingest", "--instance", instance]
    with log.open("ab") as sink:
        return subprocess.Popen([*cmd, "--no-grpc"], cwd=REPO, env=env, stderr=sink)


def _stored(pg_pool: Any, device: str) -> tuple[int, int]:
    """(envelopes in the ledger, sum of in-counts) of a device."""
    with pg_pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM envelopes WHERE device_id = %(d)s),"
            " (SELECT coalesce(sum(in_count), 0) FROM line_counts WHERE device_id = %(d)s)",
            {"d": device},
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _wait(pred: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what()}"
        time.sleep(0.02)


def _forget_session(broker: tuple[str, int], client_id: str) -> None:
    """Drop the persistent session the test left on the shared broker."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connect(*broker, clean_start=True, properties=props)
    c.disconnect()


def test_kill_mid_batch_and_restart(
    database_url: str,
    pg_pool: Any,
    mqtt_broker: tuple[str, int],
    mqtt_prefix: str,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    store, dev, probe = f"crash-{tag}", f"crashd-{tag}", f"crashp-{tag}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=store, name="Crash", timezone="UTC")
        create_device(conn, store_id=store, device_id=dev)
        create_device(conn, store_id=store, device_id=probe)
    env = {
        **os.environ,
        "MALLPULSE_DATABASE_URL": database_url,
        "MALLPULSE_MQTT_HOST": mqtt_broker[0],
        "MALLPULSE_MQTT_PORT": str(mqtt_broker[1]),
        "MALLPULSE_MQTT_TOPIC_PREFIX": mqtt_prefix,
        "MALLPULSE_MQTT_SHARE_GROUP": f"g{tag}",
        "MALLPULSE_INGEST_BATCH_SIZE": "20",
        "MALLPULSE_LOG_LEVEL": "WARNING",
    }
    instance, log = f"crash-{tag}", tmp_path / "ingest.log"
    proc = _spawn(env, instance, log)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(*mqtt_broker)
    pub.loop_start()
    end = datetime.now(UTC)

    def send(seq: int, device: str) -> None:
        payload = window_envelope(
            store_id=store,
            device_id=device,
            sequence=seq,
            start=end - timedelta(minutes=1),
            end=end,
            lines={"door": (1, 0)},
        ).SerializeToString()
        pub.publish(f"{mqtt_prefix}/{store}/{device}/window", payload, qos=1).wait_for_publish(10)

    # Probe (as another device) until the subscriber is up: earlier messages had no subscriber.
    deadline = time.monotonic() + 20
    for n in range(1, 10**6):
        assert time.monotonic() < deadline, "the ingest process did not start consuming"
        send(n, probe)
        time.sleep(0.1)
        if _stored(pg_pool, probe)[0]:
            break

    errors: list[BaseException] = []

    def publish_all() -> None:
        try:
            for seq in range(1, N + 1):
                send(seq, dev)
                time.sleep(0.002)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    publisher = threading.Thread(target=publish_all)
    publisher.start()
    _wait(lambda: _stored(pg_pool, dev)[0] >= 50, 30, lambda: "some batches to commit")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    at_kill = _stored(pg_pool, dev)[0]
    proc = _spawn(env, instance, log)  # same instance id: the broker redelivers unacked messages
    try:
        publisher.join(60)
        assert not errors, errors
        _wait(
            lambda: _stored(pg_pool, dev)[0] >= N,
            30,
            lambda: f"all envelopes (stored {_stored(pg_pool, dev)}; log {log.read_text()[-800:]})",
        )
        time.sleep(0.5)  # a doubled copy would show up now
        assert at_kill < N, "the kill came after everything was stored; nothing was tested"
        assert _stored(pg_pool, dev) == (N, N)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        pub.loop_stop()
        pub.disconnect()
        _forget_session(mqtt_broker, f"mallpulse-ingest-{instance}")
