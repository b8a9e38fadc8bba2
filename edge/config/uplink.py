"""Configuration of the path to the cloud: outbox, MQTT or gRPC uplink, TLS, health."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from edge.config.base import StrictModel


class TlsConfig(StrictModel):
    """TLS settings; a CA file enables TLS, client cert and key enable mutual TLS."""

    ca_file: Path | None = Field(default=None, description="CA certificate (PEM).")
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM).")
    key_file: Path | None = Field(default=None, description="Client private key (PEM).")
    insecure_skip_verify: bool = Field(
        default=False, description="Do not verify the server hostname (testing only)."
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(StrictModel):
    """MQTT uplink (paho-mqtt 2.x, QoS 1, persistent session)."""

    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host name.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port.")
    username: str | None = Field(default=None, description="Username, if the broker wants one.")
    password: SecretStr | None = Field(default=None, description="Password for `username`.")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; none means plain TCP.")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive seconds.")
    session_expiry_s: int = Field(
        default=86400, ge=0, description="MQTT 5 session expiry; keeps QoS 1 state on the broker."
    )
    max_inflight: int = Field(
        default=20, ge=1, le=1000, description="Unacknowledged messages in flight."
    )
    topic_prefix: str = Field(
        default="mallpulse/v1", min_length=1, description="Topic prefix before {store}/{device}."
    )
    delivery: Literal["cloud_ack", "broker_ack"] = Field(
        default="cloud_ack",
        description=(
            "When an envelope leaves the outbox: 'cloud_ack' once the ingest confirms it on the "
            "device's `ack` topic after its commit (end-to-end, no broker can lose it); "
            "'broker_ack' on the broker's PUBACK (for ingests that do not acknowledge; a broker "
            "restart or an absent subscriber can lose envelopes)."
        ),
    )
    ack_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="cloud_ack: resend an envelope not confirmed this many seconds after sending.",
    )
    ack_timeout_max_s: float = Field(
        default=600.0,
        gt=0.0,
        description="cloud_ack: the resend interval doubles per attempt up to this many seconds.",
    )
    max_unconfirmed: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description=(
            "cloud_ack: envelopes sent and not yet confirmed; sending pauses beyond it (keep it "
            "below the broker's per-subscriber queue, Mosquitto's max_queued_messages)."
        ),
    )

    @model_validator(mode="after")
    def _ack_timeouts(self) -> MqttConfig:
        if self.ack_timeout_max_s < self.ack_timeout_s:
            raise ValueError("ack_timeout_max_s must be at least ack_timeout_s")
        return self


class GrpcConfig(StrictModel):
    """gRPC uplink (bidirectional stream with per-message acks)."""

    target: str = Field(default="127.0.0.1:50051", min_length=1, description="host:port.")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; none means plaintext.")
    deadline_s: float = Field(default=10.0, gt=0.0, description="Deadline for unary calls.")
    keepalive_s: int = Field(default=30, ge=5, description="HTTP/2 keepalive ping interval.")
    token: SecretStr | None = Field(default=None, description="Bearer token sent as metadata.")


class UplinkConfig(StrictModel):
    """Which transport carries envelopes to the cloud."""

    transport: Literal["mqtt", "grpc", "none"] = Field(
        default="mqtt", description="'mqtt', 'grpc', or 'none' (outbox only, e.g. replays)."
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT settings.")
    grpc: GrpcConfig = Field(default_factory=GrpcConfig, description="gRPC settings.")
    backoff_initial_s: float = Field(default=1.0, gt=0.0, description="First reconnect delay.")
    backoff_max_s: float = Field(default=60.0, gt=0.0, description="Longest reconnect delay.")

    @model_validator(mode="after")
    def _backoff(self) -> UplinkConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        return self


class OutboxConfig(StrictModel):
    """Local store-and-forward queue (SQLite, WAL)."""

    path: Path = Field(
        default=Path("/var/lib/mallpulse/outbox.db"), description="SQLite database file."
    )
    max_entries: int = Field(
        default=100_000, ge=10, description="Most envelopes kept; oldest dropped first."
    )
    max_age_s: int = Field(
        default=7 * 86400, ge=60, description="Envelopes older than this are dropped."
    )


class HealthConfig(StrictModel):
    """Device health telemetry."""

    interval_s: float = Field(default=30.0, ge=1.0, le=3600.0, description="Seconds between.")
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics (outbox, cameras, uplink) on this port; unset: off.",
    )
