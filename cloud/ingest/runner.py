"""Composition root of the ingest process: pool, IngestService, MQTT subscriber, gRPC server."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from cloud.core import readiness
from cloud.core.logging import configure_logging
from cloud.core.metrics_http import serve_metrics
from cloud.core.settings import Settings
from cloud.db.pool import open_pool
from cloud.ingest.config_relay import ConfigRelay
from cloud.ingest.grpc_server import build_server
from cloud.ingest.mqtt import MqttIngest, MqttIngestConfig
from cloud.ingest.service import IngestService, limits_from

log = logging.getLogger(__name__)


def mqtt_config(settings: Settings, instance: str) -> MqttIngestConfig:
    """The subscriber's settings for one ingest instance."""
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    return MqttIngestConfig(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        client_id=f"mallpulse-ingest-{instance}"[:128],
        topic_prefix=settings.mqtt_topic_prefix,
        share_group=settings.mqtt_share_group,
        username=settings.mqtt_username,
        password=password,
        ca_file=settings.mqtt_ca_file,
        batch_size=settings.ingest_batch_size,
        batch_wait_s=settings.ingest_batch_wait_ms / 1000.0,
        workers=settings.ingest_mqtt_workers,
    )


def run_ingest(
    settings: Settings, *, instance: str, mqtt: bool, grpc: bool, grpc_workers: int = 64
) -> None:
    """Serve until SIGINT or SIGTERM."""
    configure_logging(settings.log_level, settings.log_format)
    stop = threading.Event()

    def _signal(_num: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _signal)
    signal.signal(signal.SIGTERM, _signal)
    pool = open_pool(settings, name=f"mallpulse-ingest-{instance}")
    service = IngestService(pool, limits_from(settings))
    subscriber = MqttIngest(mqtt_config(settings, instance), service) if mqtt else None
    server = build_server(settings, service, workers=grpc_workers)[0] if grpc else None
    relay = None
    if subscriber:
        relay = ConfigRelay(settings.database_url, pool, settings.mqtt_topic_prefix,
                            subscriber.publish)  # fmt: skip
        subscriber.relay = relay
        subscriber.start()
        relay.start()
    if server:
        server.start()
    checks = {"postgres": readiness.postgres(pool)}
    if subscriber:
        checks["mqtt"] = readiness.mqtt(subscriber.connected)
    metrics = serve_metrics(settings.metrics_port, checks)
    log.info("ingest running", extra={"instance": instance, "mqtt": mqtt, "grpc": grpc})
    while not stop.wait(10.0):
        s = service.stats
        log.info("ingest progress", extra={"accepted": s.accepted, "duplicate": s.duplicate,
                                           "rejected": s.rejected, "rows": s.rows})  # fmt: skip
    if metrics:
        metrics.stop()
    if server:
        server.stop(grace=5.0).wait()
    if relay:
        relay.stop()
    if subscriber:
        subscriber.stop()
    pool.close()
    log.info("ingest stopped", extra={"accepted": service.stats.accepted})
