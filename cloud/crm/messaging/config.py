"""The messaging hub's configuration: channels (by `type`), policy, leases and retries, read
from the JSON file named by MALLPULSE_MESSAGING_CONFIG_FILE."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cloud.core.errors import SettingsError
from cloud.core.settings import Settings
from cloud.crm.messaging.channels.base import ChannelConfig, parse_config
from cloud.crm.messaging.policy import PolicyConfig

ENV = "MALLPULSE_MESSAGING_CONFIG_FILE"


class ProviderConfig(BaseModel):
    """One provider of a channel: its adapter config and the rate it may be sent at."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(
        min_length=1, max_length=100, description="Unique provider name (its rate bucket's key)."
    )
    config: ChannelConfig = Field(description="The adapter config (its `type` picks it).")
    rate_per_s: float | None = Field(
        default=None,
        gt=0,
        description="Messages per second, shared by every worker; none: no limit.",
    )
    burst: int | None = Field(
        default=None, ge=1, description="Bucket size (default: one second of `rate_per_s`)."
    )

    @field_validator("config", mode="before")
    @classmethod
    def _config(cls, value: Any) -> Any:
        return parse_config(value) if isinstance(value, dict) else value


class RouteConfig(BaseModel):
    """A channel's providers in failover order and the circuit breaker in front of each."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    providers: tuple[ProviderConfig, ...] = Field(
        min_length=1, description="Providers, first preferred; a transient failure moves on."
    )
    circuit_failures: int = Field(
        default=5, ge=1, description="Consecutive transient failures that open a circuit."
    )
    circuit_cooldown_s: float = Field(
        default=30.0, gt=0, description="How long an open circuit sends nothing."
    )


class MessagingConfig(BaseModel):
    """Channels by name (email, sms, inapp, ...), the send-time policy and the dispatcher."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: dict[str, ChannelConfig] = Field(
        default_factory=lambda: {"inapp": parse_config({"type": "inapp"})},
        description="Channel name -> adapter config (its `type` picks the adapter).",
    )
    routes: dict[str, RouteConfig] = Field(
        default_factory=dict,
        description="Channel name -> providers in failover order with rate limits; a channel"
        " named here is not also named in `channels`.",
    )
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Send-time policy.")
    lease_s: float = Field(
        default=120.0, gt=0, description="How long a worker holds a claimed message."
    )
    batch_size: int = Field(default=200, ge=1, le=5000, description="Messages claimed at once.")
    max_attempts: int = Field(default=8, ge=1, description="Sends tried before `failed`.")
    backoff_base_s: float = Field(default=30.0, gt=0, description="First retry delay.")
    backoff_max_s: float = Field(default=3600.0, gt=0, description="Longest retry delay.")
    confirm_url: str = Field(
        default="https://mallpulse.example/consents/confirm",
        description="The double opt-in confirmation page; the token is appended as ?token=.",
    )

    @model_validator(mode="after")
    def _one_definition(self) -> MessagingConfig:
        both = sorted(set(self.channels) & set(self.routes))
        if both:
            raise ValueError(f"channels {both} are in both `channels` and `routes`")
        names = [p.name for r in self.routes.values() for p in r.providers]
        if len(names) != len(set(names)):
            raise ValueError("provider names must be unique across `routes`")
        return self

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            name: parse_config(raw) if isinstance(raw, dict) else raw for name, raw in value.items()
        }


def load(path: str | None) -> MessagingConfig:
    """Read and validate the file; SettingsError naming the variable and the bad field."""
    if path is None:
        return MessagingConfig()
    try:
        raw = json.loads(Path(path).read_text())
        return MessagingConfig.model_validate(raw)
    except (OSError, ValueError) as exc:
        detail = exc
        if isinstance(exc, ValidationError):
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            detail = ValueError(f"{where}: {first['msg']}")
        raise SettingsError(f"{ENV} ({path}): {detail}") from exc


@lru_cache(maxsize=4)
def _cached(path: str | None, _mtime: float) -> MessagingConfig:
    return load(path)


def messaging_config(settings: Settings) -> MessagingConfig:
    """The config of these settings, re-read when the file changes."""
    path = settings.messaging_config_file
    mtime = Path(path).stat().st_mtime if path and Path(path).exists() else 0.0
    return _cached(path, mtime)
