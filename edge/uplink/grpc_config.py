"""Remote config over gRPC: watch DeviceConfigService, report each verdict with ReportStatus."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import grpc

from edge.config import DeviceIdentity, GrpcConfig
from edge.uplink.base import Backoff
from protos.mallpulse.v1 import config_pb2, config_pb2_grpc

log = logging.getLogger(__name__)

# Takes the config document; returns the JSON verdict ({"version", "accepted", ...}) or None.
ConfigDecider = Callable[[bytes], bytes | None]


class GrpcConfigWatcher:
    """Streams WatchConfig (reconnecting with backoff) and reports verdicts to the cloud."""

    def __init__(
        self,
        channel: grpc.Channel,
        config: GrpcConfig,
        identity: DeviceIdentity,
        decide: ConfigDecider,
        *,
        known_version: Callable[[], int],
        backoff: Backoff | None = None,
    ) -> None:
        self._stub = config_pb2_grpc.DeviceConfigServiceStub(channel)
        self._config = config
        self._identity = identity
        self._decide = decide
        self._known_version = known_version
        self._backoff = backoff or Backoff()
        self._metadata: list[tuple[str, str]] = [("x-device-id", identity.device_id)]
        if config.token is not None:
            self._metadata.append(("authorization", f"Bearer {config.token.get_secret_value()}"))
        self._stop = threading.Event()
        self._call: grpc.Future | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching in a background thread."""
        self._thread = threading.Thread(target=self._run, name="config-grpc", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the watch and join the thread."""
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            request = config_pb2.ConfigRequest(
                device_id=self._identity.device_id,
                store_id=self._identity.store_id,
                known_version=self._known_version(),
            )
            try:
                call = self._call = self._stub.WatchConfig(request, metadata=self._metadata)
                if self._stop.is_set():  # stop() may have looked before this call existed
                    call.cancel()
                for doc in call:
                    self._backoff.reset()
                    self._on_config(doc)
            except grpc.RpcError as exc:
                if not self._stop.is_set():
                    log.warning("config watch failed", extra={"code": str(exc.code())})
            except Exception:  # a bug deciding on one document must not end the watch for good
                log.exception("config handling failed; watching again")
            self._stop.wait(self._backoff.next_delay())

    def _on_config(self, doc: config_pb2.DeviceConfig) -> None:
        if not doc.config_json:
            return  # nothing assigned to this device yet
        reply = self._decide(doc.config_json.encode("utf-8"))
        if reply is None:
            return
        verdict = json.loads(reply)
        status = config_pb2.ConfigStatus(
            device_id=self._identity.device_id,
            version=doc.version,
            accepted=bool(verdict["accepted"]),
            field=str(verdict["field"]),
            reason=str(verdict["reason"]),
        )
        try:
            self._stub.ReportStatus(
                status, timeout=self._config.deadline_s, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            log.warning("config status report failed", extra={"code": str(exc.code())})
