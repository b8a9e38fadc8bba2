"""The wire contract: every message kind survives a serialise/parse round trip unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from protos.mallpulse.v1 import config_pb2, ingest_pb2, telemetry_pb2

REPO = Path(__file__).resolve().parents[3]


def ts(seconds: int) -> Timestamp:
    """A protobuf timestamp."""
    return Timestamp(seconds=seconds)


def hist() -> telemetry_pb2.DwellHistogram:
    """A dwell histogram with one overflow bucket."""
    return telemetry_pb2.DwellHistogram(upper_bounds_s=[5, 30], counts=[1, 2, 3], total_s=321.5)


def window_envelope() -> telemetry_pb2.Envelope:
    """An envelope with every aggregate kind filled in."""
    report = telemetry_pb2.WindowReport(
        lines=[telemetry_pb2.LineCrossings(line_id="door", in_count=12, out_count=9)],
        zones=[
            telemetry_pb2.ZoneOccupancy(
                zone_id="lobby",
                avg_occupancy=3.5,
                max_occupancy=7,
                occupancy_at_end=2,
                entries=10,
                exits=11,
                dwell=hist(),
            )
        ],
        queues=[
            telemetry_pb2.QueueStats(
                zone_id="tills",
                avg_length=4.2,
                max_length=6,
                length_at_end=3,
                served=5,
                service_rate_per_min=2.5,
                estimated_wait_s=72.0,
            )
        ],
        shelves=[
            telemetry_pb2.ShelfInteractions(
                shelf_id="coffee", interactions=4, total_dwell_s=33.0, dwell=hist()
            )
        ],
        demographics=telemetry_pb2.Demographics(
            counts=[
                telemetry_pb2.DemographicCount(
                    age_band=telemetry_pb2.AGE_BAND_25_34,
                    gender=telemetry_pb2.GENDER_FEMALE,
                    count=3,
                )
            ]
        ),
        frames_processed=600,
        emotions=[
            telemetry_pb2.EmotionCount(
                zone_id="lobby", valence=telemetry_pb2.VALENCE_POSITIVE, count=4
            )
        ],
    )
    return telemetry_pb2.Envelope(
        schema_version=telemetry_pb2.SCHEMA_VERSION_1,
        device_id="gw-1",
        store_id="s-1",
        camera_id="entrance",
        sequence=2**40 + 7,
        window_start=ts(1_700_000_000),
        window_end=ts(1_700_000_060),
        sent_at=ts(1_700_000_061),
        window=report,
    )


def health_envelope() -> telemetry_pb2.Envelope:
    """An envelope carrying device health."""
    health = telemetry_pb2.DeviceHealth(
        uptime_s=3600.5,
        cpu_percent=55.0,
        memory_used_mb=812.0,
        memory_total_mb=4096.0,
        temperature_c=61.5,
        cameras=[
            telemetry_pb2.CameraHealth(
                camera_id="entrance",
                connected=True,
                fps=9.8,
                frames_dropped=3,
                detector_latency_ms=11.2,
                reconnects=1,
            )
        ],
        outbox_depth=12,
        outbox_oldest_age_s=95.0,
        outbox_dropped_total=0,
        software_version="0.1.0",
        models=[telemetry_pb2.ModelVersion(name="yolox", sha256="ab")],
        config_version=3,
    )
    return telemetry_pb2.Envelope(
        schema_version=1,
        device_id="gw-1",
        store_id="s-1",
        sequence=8,
        sent_at=ts(5),
        health=health,
    )


MESSAGES: list[Message] = [
    window_envelope(),
    health_envelope(),
    telemetry_pb2.DeviceStatus(device_id="gw-1", store_id="s-1", online=False, at=ts(9)),
    ingest_pb2.Ack(
        device_id="gw-1", sequence=8, status=ingest_pb2.ACK_STATUS_REJECTED, reason="unknown device"
    ),
    config_pb2.ConfigRequest(device_id="gw-1", store_id="s-1", known_version=2),
    config_pb2.DeviceConfig(device_id="gw-1", version=3, config_json="{}", sha256="00"),
    config_pb2.ConfigStatus(
        device_id="gw-1",
        version=3,
        accepted=False,
        field="cameras[0].lines[0].points",
        reason="must differ",
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    data = message.SerializeToString(deterministic=True)
    parsed = type(message)()
    parsed.ParseFromString(data)
    assert parsed == message
    assert parsed.SerializeToString(deterministic=True) == data


def test_envelope_payload_is_a_oneof() -> None:
    env = window_envelope()
    assert env.WhichOneof("payload") == "window"
    env.health.uptime_s = 1.0
    assert env.WhichOneof("payload") == "health"
    assert not env.HasField("window")


def test_optional_temperature_distinguishes_absent_from_zero() -> None:
    h = telemetry_pb2.DeviceHealth()
    assert not h.HasField("temperature_c")
    h.temperature_c = 0.0
    assert h.HasField("temperature_c")


def test_generated_code_is_current() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "protos.generate", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
