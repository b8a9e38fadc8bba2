"""Real processes for end-to-end delivery tests: gateway daemons and ingest processes on a
private broker, and what the cloud database holds of each device."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cloud.db.repositories.devices import create_device, create_store
from edge.outbox import SqliteOutbox

REPO = Path(__file__).resolve().parents[2]
RESENT_LOG = "envelopes sent again for want of a cloud acknowledgement"


@dataclass
class Gateway:
    """An edge daemon (`mallpulse edge run`) with the fake camera, on its own outbox."""

    device_id: str
    store_id: str
    workdir: Path
    broker_port: int
    prefix: str
    windows: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    config: Path = field(init=False)
    outbox_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / "daemon.log"
        self.config = self.workdir / "edge.yaml"
        self.outbox_path = self.workdir / "outbox.db"
        mqtt = {"port": self.broker_port, "topic_prefix": self.prefix, "max_inflight": 10,
                "ack_timeout_s": 2.0, "ack_timeout_max_s": 4.0}  # fmt: skip
        self.config.write_text(yaml.safe_dump({
            "version": 1,
            "device": {"device_id": self.device_id, "store_id": self.store_id},
            "cameras": [{"id": "cam1", "source": "fake://1",
                         "lines": [{"id": "door", "points": [[0, 0.5], [1, 0.5]]}]}],
            "uplink": {"transport": "mqtt", "mqtt": mqtt, "backoff_initial_s": 0.05,
                       "backoff_max_s": 0.3},
            "outbox": {"path": str(self.outbox_path)},
            "health": {"interval_s": 3600.0},
        }))  # fmt: skip

    def start(self) -> None:
        """Start the daemon (again, on the same outbox)."""
        fake = "tests.support.fake_camera"
        cmd = [sys.executable, "-m", "mallpulse", "edge", "run", "--config", str(self.config),
               "--pipeline", f"{fake}:pipeline_factory", "--source", f"{fake}:source_factory",
               "--drain-timeout", "10"]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO), FAKE_WINDOWS=str(self.windows))
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=sink)

    def kill(self) -> None:
        """SIGKILL: no flush, no drain."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> int:
        """SIGTERM: flush the open window, drain, exit; returns the exit status."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.proc = None
        return code

    def outbox(self) -> tuple[int, int]:
        """(last sequence handed out, entries still waiting) of the outbox."""
        box = SqliteOutbox(self.outbox_path)
        try:
            stats = box.stats()
        finally:
            box.close()
        return stats.last_sequence, stats.depth

    def resent(self) -> int:
        """Envelopes the daemon (all its runs) sent again for want of a confirmation."""
        total = 0
        for line in self.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("message") == RESENT_LOG:
                total += int(record.get("count", 0))
        return total


@dataclass
class IngestProc:
    """A cloud ingest process (`mallpulse cloud ingest --no-grpc`) with a stable instance id."""

    env: dict[str, str]
    instance: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (again: the same client id, so the same persistent session)."""
        cmd = [sys.executable, "-m", "mallpulse", "cloud", "ingest", "--instance", self.instance,
               "--no-grpc"]  # fmt: skip
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stderr=sink)

    def signal(self, sig: signal.Signals) -> None:
        """Send a signal (SIGSTOP/SIGCONT freeze and thaw it)."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, mid-batch as it may be."""
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def ingest_env(database_url: str, broker_port: int, prefix: str) -> dict[str, str]:
    """Environment of ingest processes sharing one group on a private broker."""
    return {
        **os.environ,
        "MALLPULSE_DATABASE_URL": database_url,
        "MALLPULSE_MQTT_HOST": "127.0.0.1",
        "MALLPULSE_MQTT_PORT": str(broker_port),
        "MALLPULSE_MQTT_TOPIC_PREFIX": prefix,
        "MALLPULSE_MQTT_SHARE_GROUP": f"g{uuid.uuid4().hex[:6]}",
        "MALLPULSE_INGEST_BATCH_SIZE": "20",
        "MALLPULSE_LOG_LEVEL": "WARNING",
    }


def register(pg_pool: Any, store_id: str, device_ids: list[str]) -> None:
    """Register a store and its devices."""
    with pg_pool.connection() as conn:
        create_store(conn, store_id=store_id, name=store_id, timezone="UTC")
        for device_id in device_ids:
            create_device(conn, store_id=store_id, device_id=device_id)


def landed(pg_pool: Any, device_id: str) -> tuple[list[int], int]:
    """(sequences in the envelope ledger, sum of line in-counts) of a device."""
    with pg_pool.connection() as conn:
        rows = conn.execute(
            "SELECT sequence FROM envelopes WHERE device_id = %s ORDER BY sequence", (device_id,)
        ).fetchall()
        seqs = [int(r[0]) for r in rows]
        row = conn.execute(
            "SELECT coalesce(sum(in_count), 0) FROM line_counts WHERE device_id = %s", (device_id,)
        ).fetchone()
    return seqs, int(row[0]) if row else 0
