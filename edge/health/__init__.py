"""Device health telemetry: CPU, memory, temperature, cameras, outbox, versions."""

from edge.health.collector import HealthCollector, models_from_manifests, read_temperature

__all__ = ["HealthCollector", "models_from_manifests", "read_temperature"]
