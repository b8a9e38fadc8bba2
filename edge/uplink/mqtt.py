"""MQTT uplink (paho-mqtt 2.x, MQTT 5): drains the outbox at QoS 1 over a persistent session.

One thread owns the paho client: it connects (backoff with jitter), runs the network loop and
publishes outbox entries in sequence order (paho keeps at most `max_inflight` of them
unacknowledged on the wire, and a short queue behind them). A PUBACK only frees that slot.

With `delivery: cloud_ack` (the default) an entry is deleted when the ingest confirms it on the
device's `ack` topic (a `DeliveryAck`, sent after the ingest's commit); an entry not confirmed
within `ack_timeout_s` is sent again, with a doubling wait (see edge/uplink/delivery.py). So a
broker that PUBACKs and then loses the message (a restart, a shared group with no member, a full
queue) costs a resend, not the envelope. With `delivery: broker_ack` the PUBACK deletes it, as
older versions did. paho resends unacknowledged PUBLISHes after a reconnect; after a process
restart the outbox resends everything it holds. The cloud deduplicates on (device, sequence).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from google.protobuf.message import DecodeError
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.config import DeviceIdentity, MqttConfig
from edge.outbox import OutboxEntry, SqliteOutbox
from edge.uplink.base import Backoff, UplinkError, UplinkStats
from edge.uplink.delivery import Unconfirmed, ack_ranges
from edge.uplink.mqtt_client import build_client, client_id_for, device_status
from edge.uplink.topics import Topics
from protos.mallpulse.v1 import delivery_pb2

__all__ = ["MqttUplink", "build_client", "client_id_for", "device_status"]

log = logging.getLogger(__name__)

# Takes a pushed config document; returns the JSON verdict to publish on config/status, or None.
ConfigDecider = Callable[[bytes], bytes | None]
_POLL_S = 0.05
_REPEEK_S = 1.0  # look for entries written by other processes (e.g. a replay) this often
_PREFETCH = 256  # entries read from the outbox per query
# Handed to paho beyond its in-flight window: paho sends the next one the moment a PUBACK
# frees a slot, inside its own read loop, so the window never runs dry between our turns.
_QUEUED = 64
# Deletions of acknowledged entries are batched: a crash before the batch commits only means
# those entries are sent again (the cloud deduplicates), and batching keeps SQLite off the
# hot path.
_ACK_BATCH = 500
_ACK_EVERY_S = 0.1
_SILENCE_WARN_S = 600.0  # repeat the "no cloud acknowledgement" warning at most this often


class MqttUplink:
    """Outbox -> MQTT broker at QoS 1 with PUBACK-driven deletion, last will and config topic."""

    def __init__(
        self,
        config: MqttConfig,
        identity: DeviceIdentity,
        outbox: SqliteOutbox,
        *,
        backoff: Backoff | None = None,
        software_version: str = "",
        client_id: str | None = None,
        on_config: ConfigDecider | None = None,
        presence: bool = True,
    ) -> None:
        self.config = config
        self.identity = identity
        self.outbox = outbox
        self.topics = Topics(config.topic_prefix, identity.store_id, identity.device_id)
        self._topic_of = {kind: self.topics.of(kind) for kind in ("window", "health")}
        self.stats = UplinkStats()
        self._backoff = backoff or Backoff()
        self._version = software_version
        self._on_config = on_config
        self._client = build_client(config, client_id or client_id_for(identity))
        # Only the daemon speaks for the device's presence; helpers (replays) stay silent.
        self._presence = presence
        self._connect_at = 0.0  # `at` of this connection's last will and online status
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_publish = self._handle_publish
        self._client.on_message = self._handle_message
        self._pending: dict[int, int] = {}  # paho mid -> outbox sequence
        self._cloud_ack = config.delivery == "cloud_ack"
        self._unconfirmed = Unconfirmed(
            config.ack_timeout_s, config.ack_timeout_max_s, config.max_unconfirmed
        )
        self._resend: deque[int] = deque()  # overdue sequences to publish again
        self._silence_warned = 0.0  # monotonic time of the last "no cloud ack" warning
        self._acked: list[tuple[int, int]] = []  # confirmed ranges not yet deleted
        self._acked_at = 0.0  # monotonic time of the last deletion batch
        self._buffer: deque[OutboxEntry] = deque()  # read from the outbox, not yet published
        self._cursor = 0  # highest sequence read into the buffer
        self._hold_until = 0.0  # after a refused PUBACK, wait before sending again
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        """Whether a CONNACK was received and the connection is up."""
        return self._connected.is_set()

    @property
    def in_flight(self) -> int:
        """Envelopes published and not yet acknowledged by the broker."""
        return len(self._pending)

    @property
    def unconfirmed(self) -> int:
        """cloud_ack: envelopes sent and not yet confirmed by the cloud."""
        return len(self._unconfirmed)

    def start(self) -> None:
        """Start the uplink thread."""
        if self._thread is not None:
            raise UplinkError("the MQTT uplink is already started")
        self._thread = threading.Thread(target=self._run, name="uplink-mqtt", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """New entries are in the outbox."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Announce offline (retained), disconnect and join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def publish_config_status(self, document: bytes) -> None:
        """Publish the verdict on a config (JSON) to `config/status`, retained, QoS 1."""
        self._client.publish(self.topics.config_status, document, qos=1, retain=True)

    # -- the uplink thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._connect()
            except OSError as exc:
                delay = self._backoff.next_delay()
                log.warning(
                    "mqtt connect failed",
                    extra={"error": str(exc), "retry_in_s": round(delay, 2), "event": "connect"},
                )
                self._stop.wait(delay)
                continue
            try:
                self._session()
            except Exception:  # outbox I/O error, a bug in a callback: log, reconnect, go on
                log.exception("mqtt uplink session failed", extra={"event": "session"})
                self._connected.clear()
            if not self._stop.is_set():
                self._stop.wait(self._backoff.next_delay())
        try:
            self._shutdown()
        except Exception:
            log.exception("mqtt uplink shutdown failed", extra={"event": "shutdown"})

    def _connect(self) -> None:
        if self._presence:
            # The will and the online status of a connection carry the same `at`: the cloud
            # applies a status only if it is not older than the last one, so a will stamped
            # before its own "online" would be ignored, and a will of an older connection that
            # the broker publishes late must lose against the newer connection's "online".
            self._connect_at = time.time()
            offline = device_status(
                self.identity, online=False, version=self._version, at=self._connect_at
            )
            self._client.will_set(self.topics.status, offline, qos=1, retain=True)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        self._client.connect(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=False,
            properties=props,
        )

    def _session(self) -> None:
        """Network loop plus publishing until the connection drops or stop is asked."""
        last_peek = 0.0
        while not self._stop.is_set():
            rc = self._client.loop(timeout=_POLL_S)
            self._flush_acks(force=rc != MQTTErrorCode.MQTT_ERR_SUCCESS)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._connected.clear()
                log.warning("mqtt connection lost", extra={"rc": str(rc), "event": "disconnect"})
                return
            now = time.monotonic()
            if self.connected and (self._wake.is_set() or now - last_peek > _REPEEK_S):
                self._wake.clear()
                last_peek = now
                if self._pump():
                    self._wake.set()  # the window is full or more is waiting

    def _pump(self) -> bool:
        """Hand the next entries to paho (window plus queue); True if more may be waiting."""
        room = self.config.max_inflight + _QUEUED - len(self._pending)
        if room <= 0 or time.monotonic() < self._hold_until:
            return True
        if self._cloud_ack:
            room = self._resend_due(room)
            if room <= 0:
                return True
            # Sending pauses while `max_unconfirmed` envelopes wait for the cloud.
            room = min(room, self._unconfirmed.room)
            if room <= 0:
                return False  # woken by the next acknowledgement or resend check
        more = bool(self._buffer)
        if not self._buffer:
            entries = self.outbox.peek(after=self._cursor, limit=max(room, _PREFETCH))
            if entries:
                self._buffer.extend(entries)
                self._cursor = entries[-1].sequence
            more = len(entries) == max(room, _PREFETCH)
        while self._buffer and room > 0:
            self._publish(self._buffer.popleft())
            room -= 1
        return more or bool(self._buffer)

    def _publish(self, entry: OutboxEntry) -> None:
        topic = self._topic_of.get(entry.kind) or self.topics.of(entry.kind)
        info = self._client.publish(topic, entry.payload, qos=1)
        self._pending[info.mid] = entry.sequence
        self.stats.sent += 1
        if self._cloud_ack:
            self._unconfirmed.sent(entry.sequence)

    def _resend_due(self, room: int) -> int:
        """Publish overdue entries again (oldest first); returns the room left."""
        self._resend.extend(self._unconfirmed.due())
        if not self._resend or room <= 0:
            return room
        self._flush_acks(force=True)  # what was confirmed meanwhile is not resent
        take = [self._resend.popleft() for _ in range(min(room, len(self._resend)))]
        take = [s for s in take if s in self._unconfirmed]
        entries = self.outbox.read(take)
        found = {e.sequence for e in entries}
        self._unconfirmed.forget(s for s in take if s not in found)  # dropped by the bounds
        for entry in entries:
            self._publish(entry)
        self.stats.resent += len(entries)
        if entries:
            log.info(
                "envelopes sent again for want of a cloud acknowledgement",
                extra={"count": len(entries), "first_sequence": entries[0].sequence,
                       "event": "resend"},
            )  # fmt: skip
            self._warn_if_silent(entries[0].sequence)
        return room - len(entries)

    def _warn_if_silent(self, oldest: int) -> None:
        now = time.monotonic()
        silent = now - self._unconfirmed.last_confirmed_at
        if silent < 2 * self.config.ack_timeout_s or now - self._silence_warned < _SILENCE_WARN_S:
            return
        self._silence_warned = now
        log.warning(
            "no delivery acknowledgement from the cloud; envelopes stay in the outbox and are "
            "sent again. An ingest that does not acknowledge (older than this gateway) needs "
            "uplink.mqtt.delivery: broker_ack, which deletes on the broker's PUBACK instead",
            extra={"silent_s": round(silent, 1), "oldest_sequence": oldest,
                   "unconfirmed": len(self._unconfirmed), "event": "cloud_ack"},
        )  # fmt: skip

    def _flush_acks(self, *, force: bool = False) -> None:
        if not self._acked:
            return
        now = time.monotonic()
        due = now - self._acked_at >= _ACK_EVERY_S or len(self._acked) >= _ACK_BATCH
        # Caught up (nothing waits for an acknowledgement): delete now, the queue is idle.
        idle = not self._unconfirmed if self._cloud_ack else not self._pending
        if force or due or idle:
            acked, self._acked = self._acked, []
            self._acked_at = now
            try:
                self.outbox.ack_ranges(acked)
            except Exception:
                self._acked = acked + self._acked  # keep them for the next attempt
                raise

    def _shutdown(self) -> None:
        self._flush_acks(force=True)
        if self.connected:
            info = None
            if self._presence:
                offline = device_status(self.identity, online=False, version=self._version)
                info = self._client.publish(self.topics.status, offline, qos=1, retain=True)
            deadline = time.monotonic() + 2.0
            while (
                self._pending
                or (self._cloud_ack and len(self._unconfirmed))
                or (info is not None and not info.is_published())
            ):
                if time.monotonic() > deadline:
                    break
                if self._client.loop(timeout=_POLL_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            self._flush_acks(force=True)
            self._client.disconnect()
        self._connected.clear()

    # -- paho callbacks (run in the uplink thread, inside loop()) -------------------------

    def _handle_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if reason.is_failure:
            log.error("mqtt connection refused", extra={"reason": str(reason), "event": "connack"})
            return
        self._backoff.reset()
        self.stats.connects += 1
        self._connected.set()
        self._wake.set()
        log.info(
            "mqtt connected",
            extra={"session_present": bool(flags.session_present), "event": "connack"},
        )
        if self._presence:
            online = device_status(
                self.identity, online=True, version=self._version, at=self._connect_at
            )
            client.publish(self.topics.status, online, qos=1, retain=True)
        if self._cloud_ack:
            # Subscribed on every connect (a broker without persistence forgets it); it is sent
            # before any PUBLISH of this connection, so no acknowledgement can come too early.
            client.subscribe(self.topics.ack, options=SubscribeOptions(qos=1))
            if self.stats.connects > 1:
                self._unconfirmed.rearm(now_due=not flags.session_present)
        if self._on_config is not None:
            client.subscribe(self.topics.config, options=SubscribeOptions(qos=1))

    def _handle_disconnect(
        self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        self._connected.clear()
        self.stats.disconnects += 1
        log.info("mqtt disconnected", extra={"reason": str(reason), "event": "disconnect"})

    def _handle_publish(
        self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any
    ) -> None:
        seq = self._pending.pop(mid, None)
        if seq is None:
            return  # status or config-status message, not from the outbox
        if reason.is_failure:
            # The broker refused it (e.g. ACL): keep it and send it again from this sequence.
            self.stats.rejected += 1
            self._buffer.clear()
            self._cursor = min(self._cursor, seq - 1)
            self._hold_until = time.monotonic() + self._backoff.next_delay()
            log.error(
                "broker refused envelope",
                extra={"sequence": seq, "reason": str(reason), "event": "puback"},
            )
            return
        self.stats.acked += 1
        if not self._cloud_ack:
            self._acked.append((seq, seq))

    def _handle_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        if topic == self.topics.ack:
            self._handle_cloud_ack(bytes(message.payload))
            return
        if self._on_config is None or topic != self.topics.config:
            return
        try:
            reply = self._on_config(bytes(message.payload))
        except Exception:  # a bad config must never stop the uplink
            log.exception("config handler failed", extra={"event": "config"})
            return
        if reply is not None:
            self.publish_config_status(reply)

    def _handle_cloud_ack(self, payload: bytes) -> None:
        """The cloud committed these sequences: delete them (batched) and stop tracking them."""
        try:
            ack = delivery_pb2.DeliveryAck.FromString(payload)
        except DecodeError:
            log.error("undecodable delivery acknowledgement ignored", extra={"event": "cloud_ack"})
            return
        ranges = list(ack_ranges(ack))
        self.stats.confirmed += self._unconfirmed.confirm(ranges)
        self._acked.extend(ranges)
        if ack.rejected:
            self.stats.rejected += len(ack.rejected)
            log.error(
                "the cloud dead-lettered envelopes",
                extra={"sequences": list(ack.rejected)[:20], "event": "cloud_ack"},
            )
        self._wake.set()  # room for more
