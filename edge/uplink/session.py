"""Build the configured uplink, and a store-and-forward session for tools such as replays.

`UplinkSession` is what a producer of envelopes other than the daemon uses (e.g. `mallpulse
edge replay`): envelopes go into the same outbox, get their sequence there and leave through
the same uplink, so the cloud cannot tell a replayed window from a live one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from edge.config import DeviceIdentity, EdgeConfig
from edge.outbox import SqliteOutbox
from edge.uplink.base import Backoff, Uplink
from protos.mallpulse.v1 import telemetry_pb2

log = logging.getLogger(__name__)

# Takes a pushed config document; returns the JSON verdict to send back, or None.
ConfigDecider = Callable[[bytes], bytes | None]


class NullUplink:
    """transport: none: envelopes stay in the outbox (air-gapped tests, offline replays)."""

    connected = False

    def start(self) -> None:
        """Nothing to start."""

    def notify(self) -> None:
        """Nothing to wake."""

    def stop(self, timeout: float = 5.0) -> None:
        """Nothing to stop."""


def build_uplink(
    config: EdgeConfig,
    outbox: SqliteOutbox,
    *,
    software_version: str = "",
    on_config: ConfigDecider | None = None,
    config_version: Callable[[], int] = lambda: 0,
    client_id_suffix: str = "",
    presence: bool = True,
) -> Uplink:
    """The uplink named by `uplink.transport`, draining `outbox`, answering pushed configs.

    `client_id_suffix` gives a second MQTT client of the same device (e.g. a replay publisher)
    its own session, so it does not take the daemon's session over; `presence=False` keeps it
    from publishing the device's online/offline status.
    """
    cfg = config.uplink
    backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
    if cfg.transport == "mqtt":
        from edge.uplink.mqtt import MqttUplink, client_id_for

        return MqttUplink(
            cfg.mqtt,
            config.device,
            outbox,
            backoff=backoff,
            software_version=software_version,
            client_id=client_id_for(config.device) + client_id_suffix,
            on_config=on_config,
            presence=presence,
        )
    if cfg.transport == "grpc":
        from edge.uplink.grpc import GrpcUplink

        return GrpcUplink(
            cfg.grpc,
            config.device,
            outbox,
            backoff=backoff,
            on_config=on_config,
            config_version=config_version,
        )
    return NullUplink()


def stamp(envelopes: Sequence[telemetry_pb2.Envelope], identity: DeviceIdentity) -> None:
    """Fill in schema version, device, store and send time where the producer left them empty."""
    for env in envelopes:
        env.schema_version = env.schema_version or telemetry_pb2.SCHEMA_VERSION_1
        env.device_id = env.device_id or identity.device_id
        env.store_id = env.store_id or identity.store_id
        env.sent_at.GetCurrentTime()


class UplinkSession:
    """Outbox plus uplink from a device config, as a context manager that drains on exit."""

    def __init__(self, config: EdgeConfig, *, drain_timeout_s: float = 30.0) -> None:
        self.config = config
        self.drain_timeout_s = drain_timeout_s
        self.outbox = SqliteOutbox(
            config.outbox.path,
            max_entries=config.outbox.max_entries,
            max_age_s=config.outbox.max_age_s,
        )
        self.uplink = build_uplink(config, self.outbox, client_id_suffix="-session", presence=False)

    def __enter__(self) -> UplinkSession:
        self.uplink.start()
        return self

    def store(self, envelopes: Sequence[telemetry_pb2.Envelope]) -> list[int]:
        """Stamp and store envelopes durably (sequences assigned), then wake the uplink."""
        stamp(envelopes, self.config.device)
        seqs = self.outbox.put_many(envelopes)
        self.uplink.notify()
        return seqs

    def drain(self, timeout_s: float) -> int:
        """Wait until the outbox is empty or `timeout_s` passed; returns the entries left."""
        deadline = time.monotonic() + timeout_s
        depth = self.outbox.stats().depth
        while depth and time.monotonic() < deadline:
            time.sleep(0.05)
            depth = self.outbox.stats().depth
        return depth

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:  # the uplink thread and the connections end even if the outbox fails here
            left = self.drain(self.drain_timeout_s) if exc is None else self.outbox.stats().depth
        finally:
            self.uplink.stop()
            self.outbox.close()
        if left:
            log.warning("uplink session ended with entries left", extra={"outbox_depth": left})
