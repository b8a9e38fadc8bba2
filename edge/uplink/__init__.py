"""Uplinks that drain the outbox to the cloud: MQTT (paho) or gRPC streaming."""

from edge.uplink.base import Backoff, Uplink, UplinkError, UplinkStats
from edge.uplink.topics import Topics

__all__ = ["Backoff", "Topics", "Uplink", "UplinkError", "UplinkStats"]
