"""Builders of wire envelopes (window reports, health, presence), shared by the simulator,
benchmarks and tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from protos.mallpulse.v1 import telemetry_pb2


def window_envelope(
    *,
    store_id: str,
    device_id: str,
    sequence: int,
    start: datetime,
    end: datetime,
    camera_id: str = "cam-1",
    lines: Mapping[str, tuple[int, int]] | None = None,
    zones: Mapping[str, int] | None = None,
    queues: Mapping[str, tuple[int, float]] | None = None,
    shelves: Mapping[str, tuple[int, float]] | None = None,
    demographics: Mapping[tuple[int, int], int] | None = None,
    emotions: Mapping[tuple[str, int], int] | None = None,
) -> telemetry_pb2.Envelope:
    """A window envelope: lines {id: (in, out)}, zones {id: occupancy at end}, queues
    {id: (length, wait s)}, shelves {id: (interactions, dwell s)}, demographics
    {(age band, gender): count}, emotions {(zone id, valence): count}."""
    report = telemetry_pb2.WindowReport(frames_processed=600)
    for line_id, (n_in, n_out) in (lines or {}).items():
        report.lines.add(line_id=line_id, in_count=n_in, out_count=n_out)
    for zone_id, occ in (zones or {}).items():
        zone = report.zones.add(
            zone_id=zone_id, avg_occupancy=float(occ), max_occupancy=occ, occupancy_at_end=occ,
            entries=occ, exits=0,
        )  # fmt: skip
        zone.dwell.upper_bounds_s.extend([30.0, 120.0])
        zone.dwell.counts.extend([occ, 0, 0])
        zone.dwell.total_s = 20.0 * occ
    for zone_id, (length, wait) in (queues or {}).items():
        report.queues.add(
            zone_id=zone_id, avg_length=float(length), max_length=length, length_at_end=length,
            served=1, service_rate_per_min=1.0, estimated_wait_s=wait,
        )  # fmt: skip
    for shelf_id, (hits, dwell) in (shelves or {}).items():
        report.shelves.add(shelf_id=shelf_id, interactions=hits, total_dwell_s=dwell)
    for (band, gender), count in (demographics or {}).items():
        report.demographics.counts.add(age_band=band, gender=gender, count=count)
    for (zone_id, valence), count in (emotions or {}).items():
        report.emotions.add(zone_id=zone_id, valence=valence, count=count)
    env = telemetry_pb2.Envelope(
        schema_version=telemetry_pb2.SCHEMA_VERSION_1, device_id=device_id, store_id=store_id,
        camera_id=camera_id, sequence=sequence, window=report,
    )  # fmt: skip
    env.window_start.FromDatetime(start)
    env.window_end.FromDatetime(end)
    env.sent_at.FromDatetime(end)
    return env


def health_envelope(
    *, store_id: str, device_id: str, sequence: int, start: datetime, end: datetime
) -> telemetry_pb2.Envelope:
    """A device health envelope with plausible values."""
    health = telemetry_pb2.DeviceHealth(
        uptime_s=3600.0, cpu_percent=35.0, memory_used_mb=900.0, memory_total_mb=4096.0,
        outbox_depth=0, software_version="sim-1.0",
    )  # fmt: skip
    health.cameras.add(camera_id="cam-1", connected=True, fps=10.0)
    env = telemetry_pb2.Envelope(
        schema_version=telemetry_pb2.SCHEMA_VERSION_1, device_id=device_id, store_id=store_id,
        sequence=sequence, health=health,
    )  # fmt: skip
    env.window_start.FromDatetime(start)
    env.window_end.FromDatetime(end)
    return env


def status_message(*, store_id: str, device_id: str, online: bool, at: datetime) -> bytes:
    """A serialized DeviceStatus (retained presence / last will)."""
    msg = telemetry_pb2.DeviceStatus(
        device_id=device_id, store_id=store_id, online=online, software_version="sim-1.0"
    )
    msg.at.FromDatetime(at)
    return msg.SerializeToString()
