"""The messaging hub's configuration: channels (by `type`), policy, leases and retries, read
from the JSON file named by MALLPULSE_MESSAGING_CONFIG_FILE."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cloud.core.errors import SettingsError
from cloud.core.settings import Settings
from cloud.crm.messaging.channels.base import ChannelConfig, parse_config
from cloud.crm.messaging.policy import PolicyConfig

ENV = "MALLPULSE_MESSAGING_CONFIG_FILE"


class MessagingConfig(BaseModel):
    """Channels by name (email, sms, inapp, ...), the send-time policy and the dispatcher."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: dict[str, ChannelConfig] = Field(
        default_factory=lambda: {"inapp": parse_config({"type": "inapp"})},
        description="Channel name -> adapter config (its `type` picks the adapter).",
    )
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Send-time policy.")
    lease_s: float = Field(
        default=120.0, gt=0, description="How long a worker holds a claimed message."
    )
    batch_size: int = Field(default=50, ge=1, le=1000, description="Messages claimed at once.")
    max_attempts: int = Field(default=8, ge=1, description="Sends tried before `failed`.")
    backoff_base_s: float = Field(default=30.0, gt=0, description="First retry delay.")
    backoff_max_s: float = Field(default=3600.0, gt=0, description="Longest retry delay.")
    confirm_url: str = Field(
        default="https://mallpulse.example/consents/confirm",
        description="The double opt-in confirmation page; the token is appended as ?token=.",
    )

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
