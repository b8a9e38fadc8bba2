"""A simulated fleet of store gateways publishing window and health envelopes.

Use it from Python (`Fleet(cfg).start()` ... `.stop()`, e.g. from `mallpulse demo`) or through
`mallpulse simulate`. Each device sends `rate` windows per second; windows end "now" and their
counts follow the store's local daily and weekly curve.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from cloud.simulator.curves import visitors_per_hour
from cloud.simulator.envelopes import health_envelope, window_envelope
from protos.mallpulse.v1 import telemetry_pb2

log = logging.getLogger(__name__)
ZONES = ("zone-a", "cafe", "electronics", "checkout")
SHARES = (0.5, 0.2, 0.2, 0.1)  # of the people inside, per zone
AGE_BANDS = range(1, 8)
TIMEZONES = ("Europe/Berlin", "Europe/London", "America/New_York", "Asia/Tokyo", "UTC")


@dataclass(frozen=True)
class FleetConfig:
    """What to simulate and where to send it."""

    stores: int = 2
    devices_per_store: int = 2
    rate: float = 1 / 60
    window_s: float = 60.0
    transport: Literal["mqtt", "grpc"] = "mqtt"
    store_prefix: str = "sim"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    topic_prefix: str = "mallpulse/v1"
    grpc_target: str = "127.0.0.1:50051"
    grpc_token: str | None = None
    health_every: int = 10
    seed: int = 7


@dataclass
class Device:
    """One simulated gateway."""

    store_id: str
    device_id: str
    timezone: str
    scale: float
    sequence: int
    camera: str = "cam-1"


@dataclass
class FleetStats:
    """Counters of a running fleet."""

    sent: int = 0
    errors: int = 0
    by_device: dict[str, int] = field(default_factory=dict)


class Sender(Protocol):
    """A transport adapter for the simulator."""

    def send(self, device: Device, kind: str, env: telemetry_pb2.Envelope) -> None:
        """Send one envelope (may be asynchronous)."""

    def close(self) -> None:
        """Flush and disconnect."""


def build_devices(cfg: FleetConfig) -> list[Device]:
    """The simulated devices, deterministic for a seed; sequences start at the wall clock in
    microseconds so a restarted simulator never reuses one."""
    rng = random.Random(cfg.seed)
    base = time.time_ns() // 1000
    out = []
    for s in range(cfg.stores):
        store = f"{cfg.store_prefix}-{s + 1:03d}"
        tz = TIMEZONES[s % len(TIMEZONES)]
        scale = rng.uniform(0.5, 2.0)
        for d in range(cfg.devices_per_store):
            out.append(Device(store, f"{store}-gw{d + 1}", tz, scale / cfg.devices_per_store, base))
    return out


def provision(conn: Any, devices: list[Device]) -> int:
    """Register the simulated stores and devices that do not exist yet; returns how many
    devices were created."""
    from cloud.db.repositories.devices import create_device, create_store, get_store

    created = 0
    known = {row[0] for row in conn.execute("SELECT id FROM devices")}
    for dev in devices:
        if get_store(conn, dev.store_id) is None:
            create_store(conn, store_id=dev.store_id, name=f"Store {dev.store_id}",
                         timezone=dev.timezone)  # fmt: skip
        if dev.device_id not in known:
            create_device(conn, store_id=dev.store_id, device_id=dev.device_id, name="simulated")
            created += 1
    conn.commit()
    return created


def make_window(dev: Device, end: datetime, window_s: float, rng: np.random.Generator) -> Any:
    """A realistic window report of one device ending at `end`."""
    local = end.astimezone(ZoneInfo(dev.timezone))
    per_hour = visitors_per_hour(local, store_scale=dev.scale)
    expected = per_hour * window_s / 3600.0
    n_in = int(rng.poisson(expected))
    n_out = int(rng.poisson(expected))
    inside = per_hour * 0.33  # ~20 minutes average visit
    zones = {z: int(rng.poisson(inside * w)) for z, w in zip(ZONES, SHARES, strict=True)}
    queue_len = zones["checkout"]
    shelves = {f"shelf-{k}": (int(rng.poisson(expected * 0.3)), 0.0) for k in range(1, 4)}
    shelves = {k: (n, round(n * float(rng.uniform(5, 40)), 1)) for k, (n, _) in shelves.items()}
    demo: dict[tuple[int, int], int] = {}
    for _ in range(n_in):
        key = (int(rng.choice(list(AGE_BANDS))), int(rng.choice([1, 2, 1, 2, 3])))
        demo[key] = demo.get(key, 0) + 1
    dev.sequence += 1
    return window_envelope(
        store_id=dev.store_id, device_id=dev.device_id, sequence=dev.sequence,
        start=end - timedelta(seconds=window_s), end=end, camera_id=dev.camera,
        lines={"entrance-1": (n_in, n_out)}, zones={z: zones[z] for z in ZONES[:3]},
        queues={"checkout": (queue_len, queue_len * 45.0)}, shelves=shelves, demographics=demo,
    )  # fmt: skip


class Fleet:
    """Runs the simulated devices on a background thread."""

    def __init__(self, config: FleetConfig, sender: Sender | None = None) -> None:
        self.config = config
        self.devices = build_devices(config)
        self.stats = FleetStats()
        self._sender = sender
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = np.random.default_rng(config.seed)

    def start(self) -> None:
        """Connect the transport and start publishing."""
        if self._sender is None:
            from cloud.simulator.senders import build_sender

            self._sender = build_sender(self.config, self.devices)
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop publishing, flush and disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sender is not None:
            self._sender.close()

    def run_for(self, seconds: float) -> FleetStats:
        """Publish for a while (blocking), then stop."""
        self.start()
        self._stop.wait(seconds)
        self.stop()
        return self.stats

    def tick(self, now: datetime | None = None) -> int:
        """Send one window from every device now (plus health every `health_every` ticks)."""
        assert self._sender is not None
        end = now or datetime.now(UTC)
        for dev in self.devices:
            self._send(dev, "window", make_window(dev, end, self.config.window_s, self._rng))
        return len(self.devices)

    def _send(self, dev: Device, kind: str, env: Any) -> None:
        assert self._sender is not None
        try:
            self._sender.send(dev, kind, env)
            self.stats.sent += 1
            self.stats.by_device[dev.device_id] = self.stats.by_device.get(dev.device_id, 0) + 1
        except Exception:  # a transport hiccup must not stop the fleet
            self.stats.errors += 1
            log.warning("simulator send failed", exc_info=True)

    def _run(self) -> None:
        total_rate = self.config.rate * len(self.devices)
        if total_rate <= 0:
            return
        interval = 1.0 / total_rate
        next_at = time.monotonic()
        i = 0
        while not self._stop.is_set():
            dev = self.devices[i % len(self.devices)]
            window = make_window(dev, datetime.now(UTC), self.config.window_s, self._rng)
            self._send(dev, "window", window)
            if self.stats.by_device.get(dev.device_id, 0) % self.config.health_every == 0:
                now = datetime.now(UTC)
                dev.sequence += 1
                self._send(dev, "health", health_envelope(
                    store_id=dev.store_id, device_id=dev.device_id, sequence=dev.sequence,
                    start=now - timedelta(seconds=30), end=now,
                ))  # fmt: skip
            i += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1.0:
                next_at = time.monotonic()  # cannot keep up: do not burst to catch up
