"""The paho client of the MQTT uplink: client id, credentials, TLS, presence payloads."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import DeviceIdentity, MqttConfig
from edge.uplink.base import UplinkError
from protos.mallpulse.v1 import telemetry_pb2


def client_id_for(identity: DeviceIdentity) -> str:
    """Stable, unique-per-device client id (a persistent session needs the same id)."""
    return f"mallpulse-{identity.store_id}-{identity.device_id}"[:128]


def device_status(
    identity: DeviceIdentity, *, online: bool, version: str, at: float | None = None
) -> bytes:
    """Serialized DeviceStatus for the retained `status` topic, stamped `at` (default now)."""
    msg = telemetry_pb2.DeviceStatus(
        device_id=identity.device_id,
        store_id=identity.store_id,
        online=online,
        software_version=version,
    )
    msg.at.FromNanoseconds(int((time.time() if at is None else at) * 1e9))
    return msg.SerializeToString()


def build_client(config: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho client with credentials, TLS and the in-flight window from the config."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if config.username is not None:
        password = config.password.get_secret_value() if config.password else None
        client.username_pw_set(config.username, password)
    if config.tls is not None:
        tls = config.tls
        try:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        except (OSError, ValueError) as exc:
            raise UplinkError(f"uplink.mqtt.tls: cannot load certificates: {exc}") from exc
        client.tls_insecure_set(tls.insecure_skip_verify)
    client.max_inflight_messages_set(config.max_inflight)
    return client
