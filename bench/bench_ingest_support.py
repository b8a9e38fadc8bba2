"""Shared set-up of the cloud ingest benchmarks: a private database, a private Mosquitto,
ingest processes, registered devices and pre-built envelopes (not a benchmark itself)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

from cloud.db.migrate import migrate
from cloud.ingest.rows import Batch
from cloud.simulator.fleet import Device, FleetConfig, build_devices, make_window, provision

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = "mallpulse/v1"


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """A migrated database of its own, dropped afterwards."""
    name = f"mp_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rpartition("/")[0] + "/" + name
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_mosquitto() -> Iterator[int]:
    """A Mosquitto of its own (no queue limits, so nothing is dropped under load)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 0\nmax_inflight_messages 0\n"
        )
        proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def wait_port(port: int, timeout: float = 15.0) -> None:
    """Block until something listens on the loopback port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def spawn_ingest(
    url: str, port: int, instance: str, group: str, **extra: str
) -> subprocess.Popen[bytes]:
    """`mallpulse cloud ingest` as a separate process (MQTT only unless told otherwise); returns
    once it has subscribed (earlier messages would find no subscriber and be dropped)."""
    env = {
        **os.environ,
        "MALLPULSE_DATABASE_URL": url,
        "MALLPULSE_MQTT_PORT": str(port),
        "MALLPULSE_MQTT_SHARE_GROUP": group,
        "MALLPULSE_LOG_LEVEL": "INFO",
        **extra,
    }
    cmd = [sys.executable, "-m", "mallpulse", "cloud", "ingest", "--instance", instance]
    grpc = ["--grpc"] if "MALLPULSE_GRPC_BIND" in extra else ["--no-grpc"]
    proc = subprocess.Popen([*cmd, *grpc], cwd=REPO, env=env, stderr=subprocess.PIPE)
    ready = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if b"mqtt ingest subscribed" in line:
                ready.set()
            elif b'"ERROR"' in line or b"Traceback" in line:
                sys.stderr.write(line.decode(errors="replace"))

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(60):
        proc.kill()
        raise RuntimeError(f"ingest {instance} did not subscribe within 60 s")
    return proc


def fleet(url: str, stores: int, devices_per_store: int, prefix: str = "b") -> list[Device]:
    """Registered simulated devices."""
    devices = build_devices(FleetConfig(stores=stores, devices_per_store=devices_per_store,
                                        store_prefix=prefix))  # fmt: skip
    with psycopg.connect(url) as conn:
        provision(conn, devices)
    return devices


def payloads(devices: list[Device], n: int, seed: int = 1) -> tuple[list[tuple[str, bytes]], Batch]:
    """n realistic window envelopes (round-robin over devices, busy Saturday noon) as
    (topic, bytes), and the Batch of rows they map to (for the COPY baseline)."""
    rng = np.random.default_rng(seed)
    end = datetime.now(UTC).replace(hour=12, minute=0) - timedelta(days=1)
    out, batch = [], Batch()
    for i in range(n):
        dev = devices[i % len(devices)]
        env = make_window(dev, end + timedelta(seconds=i // len(devices)), 60.0, rng)
        out.append((f"{PREFIX}/{dev.store_id}/{dev.device_id}/window", env.SerializeToString()))
        batch.add(env)
    return out, batch


def stored(url: str) -> int:
    """Envelopes in the ledger."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM envelopes").fetchone()
    return int(row[0]) if row else 0


def truncate(url: str) -> None:
    """Empty every ingest table (between runs)."""
    tables = ("envelopes, line_counts, zone_occupancy, queue_stats, shelf_interactions,"
              " demographics, device_health, line_counts_1h, line_counts_1d, live_zones,"
              " live_queues, footfall_events, dead_letters")  # fmt: skip
    with psycopg.connect(url) as conn:
        conn.execute(f"TRUNCATE {tables}")


def dead_letters(url: str) -> dict[str, int]:
    """Dead letters per reason (should stay empty in a benchmark)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT reason_code, count(*) FROM dead_letters GROUP BY 1")
        return {r[0]: int(r[1]) for r in rows}
