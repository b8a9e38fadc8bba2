"""Unit tests of the uplink's pure parts: backoff, topics, status payloads, client setup."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge.config import DeviceIdentity, GrpcConfig, MqttConfig, TlsConfig
from edge.uplink import Backoff, Topics, UplinkError
from edge.uplink.grpc import build_channel
from edge.uplink.mqtt import build_client, client_id_for, device_status
from protos.mallpulse.v1 import telemetry_pb2

IDENT = DeviceIdentity(device_id="gw-1", store_id="store-9")


def test_backoff_grows_is_jittered_capped_and_resets() -> None:
    b = Backoff(initial_s=1.0, max_s=8.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(40)]
    assert all(0.1 <= d <= 8.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 30  # jitter: not a fixed schedule
    assert max(delays[:1]) <= 1.0  # first cap is the initial delay
    assert max(delays[10:]) > 4.0  # later caps reach the maximum
    b.reset()
    assert b.next_delay() <= 1.0


def test_topic_scheme() -> None:
    t = Topics("mallpulse/v1", "store-9", "gw-1")
    assert t.of("window") == "mallpulse/v1/store-9/gw-1/window"
    assert t.of("health") == "mallpulse/v1/store-9/gw-1/health"
    assert t.status == "mallpulse/v1/store-9/gw-1/status"
    assert t.config == "mallpulse/v1/store-9/gw-1/config"
    assert t.config_status == "mallpulse/v1/store-9/gw-1/config/status"
    assert Topics("p/", "s", "d").of("window") == "p/s/d/window"
    with pytest.raises(ValueError, match="unknown topic kind"):
        t.of("frames")


def test_client_id_is_stable_and_per_device() -> None:
    other = DeviceIdentity(device_id="gw-2", store_id="store-9")
    assert client_id_for(IDENT) == client_id_for(IDENT) == "mallpulse-store-9-gw-1"
    assert client_id_for(other) != client_id_for(IDENT)


@pytest.mark.parametrize("online", [True, False])
def test_device_status_payload(online: bool) -> None:
    msg = telemetry_pb2.DeviceStatus.FromString(device_status(IDENT, online=online, version="1.2"))
    assert (msg.device_id, msg.store_id, msg.online) == ("gw-1", "store-9", online)
    assert msg.software_version == "1.2"
    assert msg.at.seconds > 0


def test_mqtt_tls_with_missing_files_names_the_field(tmp_path: Path) -> None:
    cfg = MqttConfig(tls=TlsConfig(ca_file=tmp_path / "missing-ca.pem"))
    with pytest.raises(UplinkError, match=r"uplink\.mqtt\.tls"):
        build_client(cfg, "cid")


def test_mqtt_client_gets_credentials_and_window() -> None:
    cfg = MqttConfig(username="u", password="p", max_inflight=7)
    client = build_client(cfg, "cid")
    assert client.max_inflight_messages == 7
    assert client.username == "u"


def test_grpc_tls_with_missing_files_names_the_field(tmp_path: Path) -> None:
    cfg = GrpcConfig(tls=TlsConfig(ca_file=tmp_path / "nope.pem"))
    with pytest.raises(UplinkError, match=r"uplink\.grpc\.tls"):
        build_channel(cfg)
    with pytest.raises(UplinkError, match="insecure_skip_verify"):
        build_channel(GrpcConfig(tls=TlsConfig(insecure_skip_verify=True)))
