"""Builds the DeviceHealth envelope sent every health interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil
import yaml

from edge.config import DeviceIdentity
from edge.outbox import OutboxStats
from protos.mallpulse.v1 import telemetry_pb2

log = logging.getLogger(__name__)

CameraHealthSource = Callable[[], list[telemetry_pb2.CameraHealth]]
# Sensor names that carry the CPU / SoC temperature on common gateways (x86, Raspberry Pi).
_CPU_SENSORS = ("coretemp", "k10temp", "cpu_thermal", "soc_thermal", "acpitz")


def read_temperature() -> float | None:
    """The CPU temperature in Celsius where the platform exposes one, else None."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return None
    try:
        sensors = reader()
    except (OSError, RuntimeError):
        return None
    for name in (*_CPU_SENSORS, *sorted(sensors)):
        readings = [r.current for r in sensors.get(name, []) if r.current is not None]
        if readings:
            return float(max(readings))
    return None


def models_from_manifests(paths: Iterable[Path]) -> list[telemetry_pb2.ModelVersion]:
    """ModelVersion (name, sha256) of each readable model manifest; unreadable ones are logged."""
    out = []
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            out.append(telemetry_pb2.ModelVersion(name=str(doc["name"]), sha256=str(doc["sha256"])))
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            log.warning("model manifest unreadable", extra={"path": str(path), "error": str(exc)})
    return out


class HealthCollector:
    """Samples the device and wraps the result in a `health` envelope (sequence set later)."""

    def __init__(
        self,
        identity: DeviceIdentity,
        *,
        outbox_stats: Callable[[], OutboxStats],
        cameras: CameraHealthSource,
        software_version: str,
        models: list[telemetry_pb2.ModelVersion],
        config_version: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self._outbox_stats = outbox_stats
        self._cameras = cameras
        self._version = software_version
        self._models = models
        self._config_version = config_version
        self._clock = clock
        self._started = clock()
        self._last = self._started
        psutil.cpu_percent(interval=None)  # primes the counter; the next call measures from here

    def sample(self) -> telemetry_pb2.DeviceHealth:
        """One DeviceHealth reading."""
        mem = psutil.virtual_memory()
        stats = self._outbox_stats()
        health = telemetry_pb2.DeviceHealth(
            uptime_s=self._clock() - self._started,
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_used_mb=(mem.total - mem.available) / 2**20,
            memory_total_mb=mem.total / 2**20,
            cameras=self._cameras(),
            outbox_depth=stats.depth,
            outbox_oldest_age_s=stats.oldest_age_s,
            outbox_dropped_total=stats.dropped_total,
            software_version=self._version,
            models=self._models,
            config_version=self._config_version(),
        )
        temperature = read_temperature()
        if temperature is not None:
            health.temperature_c = temperature
        return health

    def envelope(self) -> telemetry_pb2.Envelope:
        """A `health` envelope covering the time since the previous one."""
        now = self._clock()
        env = telemetry_pb2.Envelope(
            schema_version=telemetry_pb2.SCHEMA_VERSION_1,
            device_id=self.identity.device_id,
            store_id=self.identity.store_id,
            health=self.sample(),
        )
        env.window_start.FromNanoseconds(int(self._last * 1e9))
        env.window_end.FromNanoseconds(int(now * 1e9))
        env.sent_at.FromNanoseconds(int(now * 1e9))
        self._last = now
        return env
