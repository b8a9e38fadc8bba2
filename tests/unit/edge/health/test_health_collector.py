"""Unit tests of the health collector (real psutil readings, fake outbox and cameras)."""

from __future__ import annotations

from pathlib import Path

from edge.config import DeviceIdentity
from edge.health import HealthCollector, models_from_manifests, read_temperature
from edge.outbox import OutboxStats
from protos.mallpulse.v1 import telemetry_pb2

REPO = Path(__file__).resolve().parents[4]


class Clock:
    def __init__(self) -> None:
        self.t = 5_000.0

    def __call__(self) -> float:
        return self.t


def test_health_envelope_carries_every_reading() -> None:
    clock = Clock()
    cams = [telemetry_pb2.CameraHealth(camera_id="c1", connected=True, fps=9.5, frames_dropped=3)]
    models = [telemetry_pb2.ModelVersion(name="m", sha256="ab")]
    collector = HealthCollector(
        DeviceIdentity(device_id="gw", store_id="st"),
        outbox_stats=lambda: OutboxStats(
            depth=4, oldest_age_s=12.5, dropped_total=7, last_sequence=40
        ),
        cameras=lambda: cams,
        software_version="0.1.0",
        models=models,
        config_version=lambda: 3,
        clock=clock,
    )
    clock.t += 30
    env = collector.envelope()
    h = env.health
    assert (env.device_id, env.store_id, env.camera_id) == ("gw", "st", "")
    assert env.schema_version == telemetry_pb2.SCHEMA_VERSION_1
    assert env.window_end.ToNanoseconds() - env.window_start.ToNanoseconds() == 30 * 10**9
    assert h.uptime_s == 30
    assert (h.outbox_depth, h.outbox_oldest_age_s, h.outbox_dropped_total) == (4, 12.5, 7)
    assert h.cameras[0].fps == 9.5 and h.cameras[0].frames_dropped == 3
    assert (h.software_version, h.config_version, h.models[0].name) == ("0.1.0", 3, "m")
    assert 0 < h.memory_used_mb < h.memory_total_mb
    assert 0.0 <= h.cpu_percent <= 100.0 * 64
    assert h.HasField("temperature_c") == (read_temperature() is not None)
    clock.t += 10
    nxt = collector.envelope()
    assert nxt.window_start == env.window_end  # consecutive intervals


def test_models_from_manifests_reads_name_and_sha(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    got = models_from_manifests([REPO / "models" / "yolox_nano.yaml", bad, tmp_path / "none.yaml"])
    assert [(m.name, len(m.sha256)) for m in got] == [("yolox_nano", 64)]
