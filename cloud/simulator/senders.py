"""Simulator transports: one MQTT connection (QoS 1) or one gRPC relay stream for the fleet."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from typing import Any

import grpc
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.simulator.envelopes import status_message
from cloud.simulator.fleet import Device, FleetConfig, Sender
from protos.mallpulse.v1 import ingest_pb2, ingest_pb2_grpc, telemetry_pb2

log = logging.getLogger(__name__)
_END = object()


class MqttSender:
    """Publishes every device's envelopes on its own topic over one MQTT 5 connection; the
    devices' presence is published retained (online at start, offline at close)."""

    def __init__(self, config: FleetConfig, devices: list[Device]) -> None:
        self.prefix = config.topic_prefix.rstrip("/")
        self.devices = devices
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(config.mqtt_host, config.mqtt_port, keepalive=30)
        self.client.loop_start()
        self._presence(online=True)

    def _topic(self, dev: Device, kind: str) -> str:
        return f"{self.prefix}/{dev.store_id}/{dev.device_id}/{kind}"

    def _presence(self, *, online: bool) -> None:
        now = datetime.now(UTC)
        for dev in self.devices:
            msg = status_message(store_id=dev.store_id, device_id=dev.device_id, online=online,
                                 at=now)  # fmt: skip
            self.client.publish(self._topic(dev, "status"), msg, qos=1, retain=True)

    def send(self, device: Device, kind: str, env: telemetry_pb2.Envelope) -> None:
        """Publish at QoS 1 (paho resends until the broker acknowledges)."""
        self.client.publish(self._topic(device, kind), env.SerializeToString(), qos=1)

    def close(self) -> None:
        """Mark the devices offline, wait for in-flight messages, disconnect."""
        self._presence(online=False)
        info = self.client.publish(f"{self.prefix}/_sim/flush", b"", qos=1)
        info.wait_for_publish(10)
        self.client.disconnect()
        self.client.loop_stop()


class GrpcSender:
    """Relays the fleet's envelopes over one StreamEnvelopes call (admin token) and counts acks."""

    def __init__(self, config: FleetConfig) -> None:
        if not config.grpc_token:
            raise ValueError("the gRPC simulator needs an admin token (--grpc-token)")
        self.channel = grpc.insecure_channel(config.grpc_target)
        stub = ingest_pb2_grpc.TelemetryIngestStub(self.channel)
        self.requests: queue.Queue[object] = queue.Queue()
        self.acks: dict[int, int] = {}
        meta = [("authorization", f"Bearer {config.grpc_token}")]
        self.call = stub.StreamEnvelopes(self._iter(), metadata=meta)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _iter(self) -> Any:
        while (item := self.requests.get()) is not _END:
            yield item

    def _read(self) -> None:
        try:
            for ack in self.call:
                self.acks[ack.status] = self.acks.get(ack.status, 0) + 1
        except grpc.RpcError as exc:
            log.warning("simulator gRPC stream ended", extra={"code": str(exc.code())})

    def send(self, device: Device, kind: str, env: telemetry_pb2.Envelope) -> None:
        """Queue the envelope on the stream."""
        self.requests.put(env)

    def close(self) -> None:
        """Half-close, wait for the remaining acks, close the channel."""
        self.requests.put(_END)
        self.reader.join(30)
        self.channel.close()
        log.info(
            "simulator acks", extra={"accepted": self.acks.get(ingest_pb2.ACK_STATUS_ACCEPTED)}
        )


def build_sender(config: FleetConfig, devices: list[Device]) -> Sender:
    """The transport adapter the config asks for."""
    if config.transport == "grpc":
        return GrpcSender(config)
    return MqttSender(config, devices)
