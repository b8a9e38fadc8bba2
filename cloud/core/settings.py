"""Cloud settings from the environment (prefix MALLPULSE_), one object built by the entry point."""

from __future__ import annotations

import math
from collections import Counter
from ipaddress import ip_network
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.core.errors import SettingsError


class Settings(BaseSettings):
    """Every knob of the cloud processes; read from MALLPULSE_* variables or passed explicitly."""

    model_config = SettingsConfigDict(
        env_prefix="MALLPULSE_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

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
        default="redis://127.0.0.1:6379/1",
        description="Celery broker URL (redis://, amqp://, or filesystem:// for the demo).",
    )
    celery_fs_dir: str = Field(
        default=".mallpulse-demo/celery",
        min_length=1,
        description="Folder of Celery's filesystem transport (used when the broker is filesystem://).",
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
    jwt_previous_secret: SecretStr | None = Field(
        default=None,
        description="The JWT secret before the last rotation: tokens it signed stay valid until "
        "this is unset (the grace period of a rotation; new tokens use jwt_secret).",
    )
    jwt_issuer: str = Field(default="mallpulse", description="JWT `iss` claim.")
    jwt_ttl_s: int = Field(default=3600, ge=60, description="Lifetime of issued tokens.")
    jwt_max_ttl_admin_s: int = Field(
        default=86400, ge=60, description="Longest lifetime of an admin token (issued or accepted)."
    )
    jwt_max_ttl_hq_marketer_s: int = Field(
        default=7 * 86400, ge=60, description="Longest lifetime of an hq_marketer token."
    )
    jwt_max_ttl_store_manager_s: int = Field(
        default=30 * 86400, ge=60, description="Longest lifetime of a store_manager token."
    )
    jwt_max_ttl_device_s: int = Field(
        default=90 * 86400, ge=60, description="Longest lifetime of a device token."
    )
    token_revocation_cache_s: float = Field(
        default=5.0, ge=0, le=300,
        description="How long an API replica trusts its last look-up of a token's revocation.",
    )  # fmt: skip
    apikey_ttl_days: int = Field(default=90, ge=1, description="Default lifetime of API keys.")
    apikey_max_ttl_days: int = Field(default=365, ge=1, description="Longest API key lifetime.")
    ratelimit_enabled: bool = Field(
        default=True, description="Apply the rate limits below (off only in functional tests)."
    )
    ratelimit_storage: Literal["redis", "memory"] = Field(
        default="redis",
        description="Where rate-limit counters live: redis (redis_url, shared by API replicas) "
        "or memory (one process only, e.g. the demo).",
    )
    ratelimit_key_prefix: str = Field(
        default="mallpulse:ratelimit", min_length=1, description="Redis key prefix of the limits."
    )
    ratelimit_auth_failures: str = Field(
        default="10/minute;50/hour",
        description="Failed authentications allowed per client address (and per claimed caller) "
        "before further attempts get 429; `limits` notation, `;` between rules.",
    )
    ratelimit_expensive: str = Field(
        default="20/minute;200/hour",
        description="Expensive calls (imports, exports, long history ranges) allowed per caller "
        "and per client address.",
    )
    ratelimit_long_range_days: int = Field(
        default=31, ge=1, description="A history query spanning more days counts as expensive."
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses/CIDRs of reverse proxies whose X-Forwarded-For "
        "is believed; empty: the client address is the TCP peer.",
    )
    api_public_docs: bool = Field(
        default=False, description="Serve /docs and /openapi.json without authentication."
    )
    api_hsts_max_age_s: int = Field(
        default=0, ge=0,
        description="Strict-Transport-Security max-age; 0: none (set it when served over TLS).",
    )  # fmt: skip
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
    footfall_retention_days: int = Field(
        default=400, ge=1, description="Days of raw footfall rows kept on plain PostgreSQL."
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
    api_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body of an API call (413 above)."
    )
    api_max_import_bytes: int = Field(
        default=52_428_800, ge=1024, description="Largest body of a bulk import (CSV upload)."
    )
    crm_pii_export_roles: frozenset[Literal["admin", "hq_marketer"]] = Field(
        default=frozenset({"admin"}),
        description="CRM: roles holding the `pii_export` permission (bulk export of contacts).",
    )
    crm_goodwill_max_points_admin: int = Field(
        default=1_000_000, ge=0, le=2**31 - 1,
        description="CRM: most goodwill points one call by an admin may credit.",
    )  # fmt: skip
    crm_goodwill_max_points_hq_marketer: int = Field(
        default=10_000, ge=0, le=2**31 - 1,
        description="CRM: most goodwill points one call by a headquarters marketer may credit.",
    )  # fmt: skip
    crm_goodwill_approval_threshold: int = Field(
        default=1_000,
        ge=0,
        description="CRM: goodwill credits above this wait for a second admin's approval.",
    )
    messaging_config_file: str | None = Field(
        default=None,
        description="Messaging hub: JSON file of channels, policy, leases and retries (see "
        "docs/messaging.md); none: in-app only, default policy.",
    )

    @field_validator("jwt_secret", "jwt_previous_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            weakness = secret_weakness(value.get_secret_value())
            if weakness:
                name = f"MALLPULSE_{str(info.field_name).upper()}"
                raise ValueError(f"{name} {weakness}; generate one with `openssl rand -hex 32`")
        return value

    @field_validator("ratelimit_auth_failures", "ratelimit_expensive")
    @classmethod
    def _rate_rules(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '10/minute;50/hour': {exc}") from exc
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (p.strip() for p in value.split(","))):
            ip_network(item, strict=False)  # ValueError names the bad entry
        return value


#: Estimated bits a secret must carry (HS256 wants a 256-bit key; hex of 32 random bytes
#: scores about 230 by character frequency, a repeated or patterned string far less).
MIN_SECRET_BITS = 128


def secret_weakness(secret: str) -> str | None:
    """Why `secret` is too weak to sign tokens, or None: too short or too little variety."""
    if len(secret) < 32:
        return "must be at least 32 characters"
    counts = Counter(secret)
    bits = sum(n * math.log2(len(secret) / n) for n in counts.values())
    if bits < MIN_SECRET_BITS:
        return (
            f"has too little variety ({len(counts)} distinct characters, about {bits:.0f} bits "
            f"by character frequency; at least {MIN_SECRET_BITS} needed)"
        )
    return None


def settings_from_env() -> Settings:
    """Settings from the MALLPULSE_* environment; a bad value is a SettingsError naming each
    variable (for a clear one-line message instead of a traceback)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"MALLPULSE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise SettingsError("; ".join(problems)) from exc
