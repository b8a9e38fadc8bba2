"""Device configuration: pydantic models, loading, validation and the JSON schema."""

from edge.config.camera import CameraConfig, LineConfig, ShelfConfig, ZoneConfig
from edge.config.loader import (
    ConfigError,
    config_json_schema,
    load_config,
    parse_config,
    parse_config_text,
)
from edge.config.model import DeviceIdentity, EdgeConfig
from edge.config.pipeline import (
    DemographicsConfig,
    DetectorConfig,
    MotionGatingConfig,
    TrackerConfig,
    WindowConfig,
)
from edge.config.uplink import (
    GrpcConfig,
    HealthConfig,
    MqttConfig,
    OutboxConfig,
    TlsConfig,
    UplinkConfig,
)

__all__ = [
    "CameraConfig",
    "ConfigError",
    "DemographicsConfig",
    "DetectorConfig",
    "DeviceIdentity",
    "EdgeConfig",
    "GrpcConfig",
    "HealthConfig",
    "LineConfig",
    "MotionGatingConfig",
    "MqttConfig",
    "OutboxConfig",
    "ShelfConfig",
    "TlsConfig",
    "TrackerConfig",
    "UplinkConfig",
    "WindowConfig",
    "ZoneConfig",
    "config_json_schema",
    "load_config",
    "parse_config",
    "parse_config_text",
]
