"""Backing services for the demo: use what is given, else what answers locally, else embed one.

PostgreSQL: an explicit URL; else a local server on 127.0.0.1:5432 (a `mallpulse_demo` database is
created); else an embedded server from the `pgserver` wheel. MQTT: an explicit host:port; else
Mosquitto on 127.0.0.1:1883; else an embedded MQTT 5 broker (rumqttd via the `iotcore` wheel) on
a free port. Celery: the kombu filesystem transport, which needs no server at all.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEMO_DB = "mallpulse_demo"

_RUMQTTD_TOML = """\
id = 0

[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 1000
max_segment_size = 104857600
max_segment_count = 10

[v5.1]
name = "v5-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 500
    dynamic_filters = true
"""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DemoServices:
    """The resolved service endpoints and whatever was embedded to provide them."""

    database_url: str
    mqtt_host: str
    mqtt_port: int
    celery_broker_url: str
    #: True when the MQTT broker is the embedded rumqttd (see `ingest_env`)
    mqtt_embedded: bool = False
    descriptions: list[str] = field(default_factory=list)
    _owned: list[Any] = field(default_factory=list)

    def ingest_env(self) -> dict[str, str]:
        """Ingest settings the broker needs. rumqttd 0.20 disconnects a client whose PUBACKs
        come out of order (MQTT 5 asks for arrival order; the ingest's workers and its batches,
        which ack envelopes before presence, do not keep it), and its router panics ("group
        must exists") when a persistent session with a shared subscription goes away with
        messages in flight. So on the embedded broker: one worker, batches of one message (the
        demo's few messages a second need no more) and plain subscriptions."""
        if not self.mqtt_embedded:
            return {}
        return {
            "MALLPULSE_MQTT_SHARE_GROUP": "",
            "MALLPULSE_INGEST_MQTT_WORKERS": "1",
            "MALLPULSE_INGEST_BATCH_SIZE": "1",
        }

    def close(self) -> None:
        """Stop embedded services (safe to call twice)."""
        while self._owned:
            owned = self._owned.pop()
            with contextlib.suppress(Exception):
                if hasattr(owned, "stop"):
                    owned.stop()
                    continue
                owned.cleanup()
                # pgserver keeps its own exit hook even after cleanup() in 'stop' mode; it
                # would only log into streams that may be closed by then.
                atexit.unregister(owned._cleanup)


def _local_postgres() -> str | None:
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEMO_DB,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DEMO_DB}"')
    except psycopg.Error as exc:
        log.info("no usable local PostgreSQL: %s", exc)
        return None
    return f"postgresql://postgres@127.0.0.1:5432/{DEMO_DB}"


def _resolve_database(services: DemoServices, data_dir: Path, *, embedded: bool) -> None:
    if services.database_url:
        services.descriptions.append(f"PostgreSQL: given ({_redact(services.database_url)})")
        return
    local = _local_postgres() if not embedded and port_open("127.0.0.1", 5432) else None
    if local:
        services.database_url = local
        services.descriptions.append(f"PostgreSQL: local server, database {DEMO_DB}")
        return
    with warnings.catch_warnings():
        # pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver

        get_server = pgserver.get_server  # type: ignore[attr-defined]
        server = get_server(str(data_dir / "pg"), cleanup_mode="stop")
    services._owned.append(server)
    services.database_url = server.get_uri()
    services.descriptions.append(f"PostgreSQL: embedded (pgserver) in {data_dir / 'pg'}")


def _resolve_broker(services: DemoServices, data_dir: Path, *, embedded: bool) -> None:
    if services.mqtt_host:
        services.descriptions.append(f"MQTT: given ({services.mqtt_host}:{services.mqtt_port})")
        return
    if not embedded and port_open("127.0.0.1", 1883):
        services.mqtt_host, services.mqtt_port = "127.0.0.1", 1883
        services.descriptions.append("MQTT: local broker on 127.0.0.1:1883")
        return
    from iotcore import Broker

    port = free_port()
    conf = data_dir / "rumqttd.toml"
    conf.write_text(_RUMQTTD_TOML.format(port=port), encoding="utf-8")
    broker = Broker(config_path=str(conf))
    broker.start(timeout=15)
    services._owned.append(broker)
    services.mqtt_host, services.mqtt_port = "127.0.0.1", port
    services.mqtt_embedded = True
    services.descriptions.append(f"MQTT: embedded MQTT 5 broker (rumqttd) on 127.0.0.1:{port}")


def _redact(url: str) -> str:
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, creds = head.partition("//")
    return f"{scheme}//{creds.split(':', 1)[0]}:***@{tail}"


def resolve_services(
    *,
    data_dir: Path,
    database_url: str | None = None,
    mqtt: str | None = None,
    celery_broker_url: str | None = None,
    embedded: bool = False,
) -> DemoServices:
    """Find or start every backing service (`embedded`: never use local servers); the caller
    must `close()` the result."""
    data_dir.mkdir(parents=True, exist_ok=True)
    host, _, port = (mqtt or "").partition(":")
    celery_dir = data_dir / "celery"
    (celery_dir / "queue").mkdir(parents=True, exist_ok=True)
    (celery_dir / "processed").mkdir(parents=True, exist_ok=True)
    (celery_dir / "control").mkdir(parents=True, exist_ok=True)
    services = DemoServices(
        database_url=database_url or "",
        mqtt_host=host,
        mqtt_port=int(port or 1883),
        celery_broker_url=celery_broker_url or "filesystem://",
    )
    try:
        _resolve_database(services, data_dir, embedded=embedded)
        _resolve_broker(services, data_dir, embedded=embedded)
    except Exception:
        services.close()
        raise
    if celery_broker_url:
        services.descriptions.append(f"Celery broker: given ({_redact(celery_broker_url)})")
    else:
        services.descriptions.append(f"Celery broker: filesystem transport in {celery_dir}")
    return services
