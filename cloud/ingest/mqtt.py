"""MQTT ingest: a shared subscription ($share/<group>/...) with manual acknowledgements.

paho delivers messages on its network thread into one queue per worker thread (two by default),
chosen by device, so each device's messages are stored in the order they arrived. Each worker
takes batches from its queue, stores a batch through IngestService in one transaction and only
then sends, per device, a delivery acknowledgement (`{prefix}/{store}/{device}/ack`, see
cloud/ingest/delivery.py: the gateway deletes from its outbox only on it) and that batch's
PUBACKs (in arrival order, as MQTT asks); while one worker waits on PostgreSQL the other maps
its batch.
A process killed mid-batch never acknowledged that batch: the broker redelivers it to the same
persistent session (stable client id) and the (device, sequence) ledger drops the copies; what
the broker itself lost, the gateway sends again for want of an acknowledgement.

A batch that fails with the database unavailable is retried until it is back. One that fails
otherwise `_POISON_AFTER` times is taken apart: each message is handled alone, and one that
still fails is dead-lettered (unprocessable, with the error) and acknowledged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg_pool import PoolTimeout

from cloud.ingest.config_relay import ConfigRelay
from cloud.ingest.delivery import acks_by_topic
from cloud.ingest.errors import IngestError
from cloud.ingest.paho_props import install as install_paho_props
from cloud.ingest.service import IngestService, Outcome
from cloud.ingest.status import apply_statuses
from cloud.ingest.validate import Incoming

log = logging.getLogger(__name__)
_QUIET_GAP_S = 0.005
_POISON_AFTER = 3  # failures of a batch (or of one message) before it is taken apart


@dataclass(frozen=True)
class MqttIngestConfig:
    """Where and how the subscriber connects."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "mallpulse-ingest-0"
    topic_prefix: str = "mallpulse/v1"
    share_group: str = "ingest"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    batch_size: int = 500
    batch_wait_s: float = 0.1
    session_expiry_s: int = 3600
    receive_maximum: int = 2000
    workers: int = 2


def parse_topic(prefix: str, topic: str) -> tuple[str, str, str] | None:
    """(store, device, kind) of a device topic under `prefix`, or None."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


class MqttIngest:
    """Subscriber + batching worker; start() then stop()."""

    def __init__(self, config: MqttIngestConfig, service: IngestService) -> None:
        self.config = config
        self.service = service
        self._queues: list[queue.Queue[mqtt.MQTTMessage]] = [
            queue.Queue() for _ in range(max(1, config.workers))
        ]
        #: topic segment holding the device id (<prefix>/<store>/<device>/...)
        self._device_part = len(config.topic_prefix.rstrip("/").split("/")) + 1
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        #: Set by the composition root to record `config/status` verdicts.
        self.relay: ConfigRelay | None = None
        self._client = self._build()

    def _build(self) -> mqtt.Client:
        cfg = self.config
        if not install_paho_props():
            log.warning("paho layout not recognised; PUBLISH properties decoded the slow way")
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.ca_file:
            client.tls_set(ca_certs=cfg.ca_file)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        return client

    def start(self) -> None:
        """Connect (persistent session) and start the network loop and the worker."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        self._client.connect_async(
            self.config.host, self.config.port, keepalive=30, clean_start=False, properties=props
        )
        self._client.loop_start()
        for i, inbox in enumerate(self._queues):
            worker = threading.Thread(
                target=self._run, args=(inbox,), name=f"ingest-mqtt-{i}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batches in hand, then disconnect (unacknowledged messages stay queued)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        self._client.disconnect()
        self._client.loop_stop()

    def _topics(self) -> list[tuple[str, SubscribeOptions]]:
        cfg = self.config
        prefix = cfg.topic_prefix.rstrip("/")
        # No group: plain subscriptions, for brokers whose shared subscriptions are unusable
        # (the demo's embedded rumqttd panics when a persistent shared subscriber disconnects).
        share = f"$share/{cfg.share_group}/{prefix}" if cfg.share_group else prefix
        opts = SubscribeOptions(qos=1)
        # Presence is subscribed without sharing so every process sees retained states.
        return [(f"{share}/+/+/window", opts), (f"{share}/+/+/health", opts),
                (f"{share}/+/+/config/status", opts), (f"{prefix}/+/+/status", opts)]  # fmt: skip

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        if rc.is_failure:
            log.error("mqtt connect refused", extra={"reason": str(rc)})
            return
        client.subscribe(self._topics())
        self.connected.set()
        log.info("mqtt ingest connected", extra={"client_id": self.config.client_id})

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        if any(code.is_failure for code in codes):
            log.error("mqtt subscription refused", extra={"codes": [str(c) for c in codes]})
            return
        self.subscribed.set()
        log.info("mqtt ingest subscribed", extra={"client_id": self.config.client_id})

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        log.warning("mqtt ingest disconnected", extra={"reason": str(rc)})

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        queues = self._queues
        if len(queues) == 1:
            queues[0].put(msg)
            return
        parts = msg.topic.split("/", self._device_part + 1)
        device = parts[self._device_part] if len(parts) > self._device_part else msg.topic
        queues[hash(device) % len(queues)].put(msg)

    def _run(self, inbox: queue.Queue[mqtt.MQTTMessage]) -> None:
        batch: list[mqtt.MQTTMessage] = []
        pending: list[mqtt.MQTTMessage] = []  # the part of `batch` not yet committed
        failures = 0
        while not self._stop.is_set() or pending:
            if not pending:
                batch, failures = self._take(inbox), 0
                pending = list(batch)
                if not pending:
                    continue
            try:
                self._handle(pending)
            except Exception as exc:  # the worker must outlive any failure; nothing is acked
                transient = isinstance(exc, IngestError)
                failures += 1
                detail = exc.detail if isinstance(exc, IngestError) else repr(exc)
                log.error("batch not stored; will retry", extra={"error": detail},
                          exc_info=not transient)  # fmt: skip
                if not transient and failures >= _POISON_AFTER:
                    pending, failures = self._take_apart(pending), 0
                if pending and self._stop.wait(1.0):
                    return  # unacknowledged: the broker redelivers them
                if pending:
                    continue
            # All committed: PUBACK the batch in arrival order, as MQTT asks (a broker may drop
            # a client that acknowledges out of order).
            self._ack(batch)

    def _take_apart(self, messages: list[mqtt.MQTTMessage]) -> list[mqtt.MQTTMessage]:
        """Handle a failing batch message by message, dead-lettering those that fail alone;
        returns the messages left when the database went away meanwhile."""
        log.warning("batch keeps failing; handling its messages one by one",
                    extra={"size": len(messages)})  # fmt: skip
        for i, msg in enumerate(messages):
            error: Exception | None = None
            for _ in range(_POISON_AFTER):
                try:
                    self._handle([msg])
                    error = None
                    break
                except IngestError:
                    return messages[i:]
                except Exception as exc:
                    error = exc
            if error is None:
                continue
            try:
                self._dead_letter(msg, error)
            except IngestError:
                return messages[i:]
        return []

    def _dead_letter(self, msg: mqtt.MQTTMessage, error: Exception) -> None:
        topic = msg.topic
        parts = parse_topic(self.config.topic_prefix, topic)
        store, device, kind = parts if parts else (None, None, None)
        item = Incoming(bytes(msg.payload), "mqtt", msg.mid, topic, store, device, kind)
        outcome = self.service.dead_letter(item, f"ingest failed: {error!r}")
        if kind in ("window", "health"):
            self._confirm([item], [outcome])

    def _take(self, inbox: queue.Queue[mqtt.MQTTMessage]) -> list[mqtt.MQTTMessage]:
        try:
            first = inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.config.batch_wait_s
        # Linger while messages keep coming (under load batches fill up to batch_wait_s); a
        # quiet gap ends the batch at once, so light traffic is not delayed.
        while len(batch) < self.config.batch_size:
            left = deadline - time.monotonic()
            try:
                wait = min(left, _QUIET_GAP_S)
                batch.append(inbox.get(timeout=wait) if wait > 0 else inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _confirm(self, items: list[Incoming], outcomes: list[Outcome]) -> None:
        """Tell each device which of its sequences are final (call only after the commit)."""
        for topic, ack in acks_by_topic(self.config.topic_prefix, items, outcomes).items():
            self._client.publish(topic, ack, qos=1)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish on the subscriber's connection (used by the config relay)."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def _verdicts(self, messages: list[mqtt.MQTTMessage]) -> None:
        """Record devices' `config/status` verdicts (JSON) through the config relay."""
        for msg in messages:
            parts = parse_topic(self.config.topic_prefix, msg.topic.removesuffix("/status"))
            if parts is None or not msg.payload or self.relay is None:
                continue
            problem = self.relay.record(parts[1], bytes(msg.payload))
            if problem:
                log.warning("config verdict ignored", extra={"topic": msg.topic, "why": problem})

    def _handle(self, messages: list[mqtt.MQTTMessage]) -> None:
        """Store and confirm a batch, removing what committed from `messages` (the caller
        PUBACKs the whole batch once it is empty). The envelopes are committed, confirmed to
        their devices and removed first, so a retry after a failure of the rest (presence,
        config verdicts) does not store or dead-letter them again."""
        envelopes: list[Incoming] = []
        statuses: list[Incoming] = []
        verdicts: list[mqtt.MQTTMessage] = []
        rest: list[mqtt.MQTTMessage] = []
        prefix = self.config.topic_prefix
        for msg in messages:
            topic = msg.topic  # decoded from bytes on every access
            if topic.endswith("/config/status"):
                verdicts.append(msg)
                rest.append(msg)
                continue
            parts = parse_topic(prefix, topic)
            store, device, kind = parts if parts else (None, None, None)
            item = Incoming(bytes(msg.payload), "mqtt", msg.mid, topic, store, device, kind)
            if kind == "status":
                rest.append(msg)
                if msg.payload:  # an empty retained message only clears the topic
                    statuses.append(item)
            else:
                envelopes.append(item)
        if envelopes:
            outcomes = self.service.ingest(envelopes)
            self._confirm(envelopes, outcomes)
            messages[:] = rest
        try:
            apply_statuses(self.service.pool, statuses)
            self._verdicts(verdicts)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise IngestError(f"database unavailable: {exc}") from exc
        messages.clear()

    def _ack(self, messages: list[mqtt.MQTTMessage]) -> None:
        """PUBACK messages whose handling committed: now the broker may forget them."""
        for msg in messages:
            if msg.qos > 0:
                self._client.ack(msg.mid, msg.qos)
