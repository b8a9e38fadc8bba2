"""Schemas of stores and devices (the fleet behind the footfall API)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloud.api.schemas.limits import ConfigDocument

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_TEXT = r"^[^\x00-\x1f\x7f]*$"  # printable: no NUL or control characters


#: A store id in a path: validated so that odd input is a 422, never a database error.
StoreId = Annotated[str, Path(pattern=_ID, description="Store id.")]


class StoreCreate(BaseModel):
    """A store to register."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID, description="Store id (letters, digits, _ . -).")
    name: str = Field(min_length=1, max_length=200, pattern=_TEXT, description="Display name.")
    timezone: str = Field(
        default="UTC", max_length=64, description="IANA time zone, e.g. Europe/Berlin."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class StorePublic(BaseModel):
    """A store."""

    id: str = Field(description="Store id.")
    name: str = Field(description="Display name.")
    timezone: str = Field(description="IANA time zone of the store's calendar.")


class DeviceCreate(BaseModel):
    """A device (store gateway) to register."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID, description="Device id, as in the device's config.")
    name: str = Field(default="", max_length=200, pattern=_TEXT, description="A label.")


class DevicePublic(BaseModel):
    """A registered device and its presence."""

    id: str = Field(description="Device id.")
    store_id: str = Field(description="Store the device belongs to.")
    name: str = Field(description="A label.")
    online: bool = Field(description="Online by its last presence message or gRPC stream.")
    last_seen_at: datetime | None = Field(description="When it last sent an envelope.")
    software_version: str | None = Field(description="Reported software version.")


class DeviceCredential(BaseModel):
    """The device's secret, returned once at registration."""

    device: DevicePublic = Field(description="The new device.")
    credential: str = Field(description="gRPC bearer credential `mpd_<device>.<secret>`.")
    mqtt_username: str = Field(description="MQTT user name (the device id).")
    mqtt_password: str = Field(description="MQTT password (the secret).")


#: A device id in a path.
DeviceId = Annotated[str, Path(pattern=_ID, description="Device id.")]


class DeviceConfigCreate(BaseModel):
    """A configuration document (the device's EdgeConfig as JSON) to push to a device."""

    model_config = ConfigDict(extra="forbid")

    config: ConfigDocument = Field(
        description="The EdgeConfig document; its `version` is set to the published version"
        " (at most 16 levels deep, 10 000 keys in all, 256 KiB as JSON)."
    )


class DeviceConfigPublic(BaseModel):
    """A published configuration version and what the device said about it."""

    device_id: str = Field(description="Device id.")
    version: int = Field(description="Version, increasing per device.")
    sha256: str = Field(description="SHA-256 of the document as served.")
    created_at: datetime = Field(description="When it was published.")
    status: str | None = Field(description="`accepted` or `rejected: <field>: <reason>`.")
    status_at: datetime | None = Field(description="When the device reported.")
    config: dict[str, Any] = Field(description="The document as served to the device.")
