"""Cloud settings from the environment (prefix MALLPULSE_), one object built by the entry point."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the cloud processes; read from MALLPULSE_* variables or passed explicitly."""

    model_config = SettingsConfigDict(env_prefix="MALLPULSE_", extra="forbid", frozen=True)

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/mallpulse",
        description="PostgreSQL/TimescaleDB connection URL (libpq form).",
    )
    db_pool_min: int = Field(default=1, ge=0, description="Connections kept open in the pool.")
    db_pool_max: int = Field(default=10, ge=1, description="Most connections in the pool.")
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis for pub/sub and caching."
    )
    celery_broker_url: str = Field(
        default="redis://127.0.0.1:6379/1", description="Celery broker URL (redis:// or amqp://)."
    )
    mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker host for ingest.")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    mqtt_username: str | None = Field(default=None, description="MQTT username for ingest.")
    mqtt_password: SecretStr | None = Field(default=None, description="MQTT password.")
    mqtt_ca_file: str | None = Field(default=None, description="CA file; enables MQTT TLS.")
    mqtt_topic_prefix: str = Field(default="mallpulse/v1", description="Device topic prefix.")
    mqtt_share_group: str = Field(
        default="ingest",
        description="Shared-subscription group of the ingest processes; empty: plain "
        "subscriptions (one ingest process only, e.g. the demo on its embedded broker).",
    )
    grpc_bind: str = Field(default="127.0.0.1:50051", description="gRPC ingest listen address.")
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535,
        description="Port (all interfaces: Prometheus scrapes from elsewhere) of /metrics, "
        "/healthz and /readyz of the ingest and worker processes (the API serves them on its "
        "own port); unset: not served.",
    )  # fmt: skip
    api_host: str = Field(default="127.0.0.1", description="HTTP API listen host.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="HTTP API listen port.")
    jwt_secret: SecretStr | None = Field(
        default=None, description="HMAC secret for JWT bearer tokens (required by the API)."
    )
    jwt_issuer: str = Field(default="mallpulse", description="JWT `iss` claim.")
    jwt_ttl_s: int = Field(default=3600, ge=60, description="Lifetime of issued tokens.")
    ingest_max_envelope_bytes: int = Field(
        default=65536, ge=256, description="Envelopes larger than this are dead-lettered."
    )
    ingest_batch_size: int = Field(
        default=500, ge=1, le=10000, description="Most envelopes committed in one transaction."
    )
    ingest_batch_wait_ms: int = Field(
        default=100, ge=0, le=5000, description="How long ingest waits to fill a batch."
    )
    ingest_mqtt_workers: int = Field(
        default=2, ge=1, le=16,
        description="MQTT batches stored at once per ingest process (one connection each).",
    )  # fmt: skip
    ingest_max_skew_s: int = Field(
        default=300, ge=0, description="Windows ending this far in the future are rejected."
    )
    ingest_max_age_days: int = Field(
        default=30, ge=1, description="Windows older than this are rejected as out of range."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )
    log_format: Literal["json", "text"] = Field(default="json", description="Log format.")
    ml_churn_horizon_days: float = Field(
        default=182.0, gt=0, description="Churn = no purchase within this many days."
    )
    ml_churn_snapshot_days: float = Field(
        default=28.0, gt=0, description="Days between churn observations of an idle customer."
    )
    ml_churn_max_idle_snapshots: int = Field(
        default=6, ge=0, description="Most observations of a customer after their last purchase."
    )
    ml_churn_learning_rate: float = Field(
        default=0.005, gt=0, description="SGD learning rate of the online churn model."
    )
    ml_churn_reset_on_drift: bool = Field(
        default=False, description="Reset the churn model when ADWIN detects drift."
    )
    ml_consume_batch: int = Field(
        default=5000, ge=1, description="Source rows per churn learning transaction."
    )
    ml_consume_interval_s: float = Field(
        default=5.0, gt=0, description="Beat interval of the churn learning task."
    )
    ml_score_interval_s: float = Field(
        default=3600.0, gt=0, description="Beat interval of scoring all customers."
    )
    ml_clv_horizon_weeks: float = Field(
        default=52.0, gt=0, description="Horizon of expected purchases and CLV, in weeks."
    )
    crm_phone_region: str = Field(
        default="US",
        min_length=2,
        max_length=2,
        description="CRM: ISO 3166 region for phone numbers written without a country code.",
    )
    crm_loyalty_program_file: str | None = Field(
        default=None, description="CRM: JSON file with the loyalty programme (earn rates, tiers)."
    )
    crm_identity_rules_file: str | None = Field(
        default=None, description="CRM: JSON file with identity rules (strong/weak kinds, ...)."
    )

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value
