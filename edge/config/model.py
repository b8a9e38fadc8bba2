"""The root device configuration, EdgeConfig, composed of one model per concern."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from edge.config.base import Identifier, StrictModel
from edge.config.camera import CameraConfig
from edge.config.pipeline import (
    DemographicsConfig,
    DetectorConfig,
    TrackerConfig,
    WindowConfig,
)
from edge.config.uplink import HealthConfig, OutboxConfig, UplinkConfig


class DeviceIdentity(StrictModel):
    """Who this gateway is."""

    device_id: Identifier = Field(description="Gateway id, unique in the chain.")
    store_id: Identifier = Field(description="Store the gateway belongs to.")
    timezone: str = Field(default="UTC", description="IANA time zone of the store.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone '{value}'") from exc
        return value


class EdgeConfig(StrictModel):
    """Everything a store gateway needs to run."""

    version: int = Field(default=1, ge=0, description="Config version (set by remote config).")
    device: DeviceIdentity = Field(description="Device identity.")
    cameras: list[CameraConfig] = Field(min_length=1, description="Cameras on this gateway.")
    detector: DetectorConfig = Field(
        default_factory=lambda: DetectorConfig(kind="motion"), description="Person detector."
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Tracker.")
    demographics: DemographicsConfig = Field(
        default_factory=DemographicsConfig, description="Optional demographics stage."
    )
    window: WindowConfig = Field(default_factory=WindowConfig, description="Aggregation windows.")
    uplink: UplinkConfig = Field(default_factory=UplinkConfig, description="Uplink to the cloud.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="Store-and-forward.")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Health telemetry.")

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique: {dupes}")
        return cameras

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera with this id; KeyError naming the known ids otherwise."""
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(f"no camera '{camera_id}'; known: {[c.id for c in self.cameras]}")
