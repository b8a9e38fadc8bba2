"""The MQTT topic scheme: {prefix}/{store}/{device}/{kind}, prefix `mallpulse/v1` by default."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("window", "health", "status", "config", "config/status", "ack")


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names of one device."""

    prefix: str
    store_id: str
    device_id: str

    def of(self, kind: str) -> str:
        """The topic of a kind: window, health, status, config, config/status or ack."""
        if kind not in KINDS:
            raise ValueError(f"unknown topic kind '{kind}'; known: {KINDS}")
        return f"{self.prefix.rstrip('/')}/{self.store_id}/{self.device_id}/{kind}"

    @property
    def status(self) -> str:
        """Retained presence (DeviceStatus protobuf; the last will says offline)."""
        return self.of("status")

    @property
    def config(self) -> str:
        """Retained device config (JSON of EdgeConfig) published by the cloud."""
        return self.of("config")

    @property
    def config_status(self) -> str:
        """The device's verdict on a config (JSON: version, accepted, field, reason)."""
        return self.of("config/status")

    @property
    def ack(self) -> str:
        """Delivery acknowledgements (DeliveryAck protobuf) the ingest sends after its commit."""
        return self.of("ack")
