"""Benchmark: outbox -> MQTT -> cloud acknowledgement, against a bare paho QoS 1 publisher.

Measures, on the same broker in the same run:
  1. baseline: a bare paho client publishing N envelopes at QoS 1 (same in-flight window),
     timed until the last PUBACK;
  2. uplink (cloud_ack, the default): the same N envelopes stored in the SQLite outbox, drained
     by MqttUplink while a minimal acking responder (subscribed like the ingest, answering each
     batch it received with a DeliveryAck on the device's ack topic) stands in for the cloud;
     timed until the outbox is empty (every cloud acknowledgement turned into a delete);
  3. the same with `delivery: broker_ack` (deleted on PUBACK; the pre-issue-11 path), for scale;
  4. backlog: one hour of a 4-camera gateway (4 x 60 windows + 120 health envelopes) waiting
     in the outbox, timed from uplink start (connect included) to empty, cloud-acked;
  5. the same drain over gRPC to a loopback grpcio server (per-envelope acks).
Prints each figure and the ratio cloud-acked uplink/baseline (the aim is >= 0.7).

    python bench/bench_uplink.py [--n 5000] [--repeat 3] [--broker 127.0.0.1:1883]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import DeviceIdentity, GrpcConfig, MqttConfig
from edge.outbox import SqliteOutbox
from edge.uplink import Backoff
from edge.uplink.grpc import GrpcUplink
from edge.uplink.mqtt import MqttUplink
from protos.mallpulse.v1 import delivery_pb2, ingest_pb2, ingest_pb2_grpc, telemetry_pb2

IDENT = DeviceIdentity(device_id="gw-bench", store_id="store-bench")
INFLIGHT = 20


def window_envelope(camera: str, i: int) -> telemetry_pb2.Envelope:
    """A realistic window report: lines, zones with dwell histograms, queue, shelves, demo."""
    env = telemetry_pb2.Envelope(device_id=IDENT.device_id, store_id=IDENT.store_id)
    env.camera_id = camera
    env.window_start.FromSeconds(1_795_000_000 + 60 * i)
    env.window_end.FromSeconds(1_795_000_060 + 60 * i)
    w = env.window
    w.frames_processed = 600
    for line in ("door-a", "door-b"):
        w.lines.add(line_id=line, in_count=12 + i % 5, out_count=9)
    bounds = [5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
    for zone in ("lobby", "promo"):
        z = w.zones.add(zone_id=zone, avg_occupancy=3.4, max_occupancy=8, entries=14, exits=13)
        z.dwell.upper_bounds_s.extend(bounds)
        z.dwell.counts.extend([3, 4, 2, 2, 1, 1, 0, 0])
    w.queues.add(zone_id="till", avg_length=2.5, max_length=6, served=7, estimated_wait_s=40.0)
    for shelf in ("coffee", "tea"):
        s = w.shelves.add(shelf_id=shelf, interactions=5, total_dwell_s=41.0)
        s.dwell.upper_bounds_s.extend(bounds)
        s.dwell.counts.extend([1, 2, 1, 1, 0, 0, 0, 0])
    for band in range(1, 8):
        for gender in (1, 2):
            w.demographics.counts.add(age_band=band, gender=gender, count=1 + band % 3)
    return env


def health_envelope() -> telemetry_pb2.Envelope:
    """A health envelope with four cameras."""
    env = telemetry_pb2.Envelope(device_id=IDENT.device_id, store_id=IDENT.store_id)
    h = env.health
    h.uptime_s, h.cpu_percent, h.memory_used_mb, h.memory_total_mb = 3600.0, 35.0, 900.0, 4096.0
    for cam in range(4):
        h.cameras.add(camera_id=f"cam{cam}", connected=True, fps=10.0, detector_latency_ms=11.0)
    h.software_version = "0.1.0"
    h.models.add(name="yolox_nano", sha256="e8af" * 16)
    return env


def bare_paho(host: str, port: int, payloads: list[bytes], topic: str) -> float:
    """Seconds for a bare paho client to publish every payload at QoS 1 and get all PUBACKs."""
    done = threading.Event()
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(payloads):
            done.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(INFLIGHT)
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    time.sleep(0.2)
    start = time.perf_counter()
    for p in payloads:
        client.publish(topic, p, qos=1)
    if not done.wait(120):
        raise RuntimeError("baseline publisher did not get every PUBACK")
    elapsed = time.perf_counter() - start
    client.loop_stop()
    client.disconnect()
    return elapsed


def fill(path: Path, envelopes: list[telemetry_pb2.Envelope]) -> SqliteOutbox:
    """A fresh outbox holding the envelopes (stored in batches of 100)."""
    outbox = SqliteOutbox(path, max_entries=10**7)
    for i in range(0, len(envelopes), 100):
        outbox.put_many(envelopes[i : i + 100])
    return outbox


def drain(outbox: SqliteOutbox, uplink: MqttUplink | GrpcUplink, *, wait_connect: bool) -> float:
    """Seconds from start (or from the connection, if wait_connect) until the outbox is empty.

    The uplink's ack counter is polled first (cheap), so the benchmark's own polling does not
    steal the CPU from the uplink thread; the last step waits for the deletions to commit.
    """
    n = outbox.stats().depth
    cloud_acked = isinstance(uplink, MqttUplink) and uplink.config.delivery == "cloud_ack"
    start = time.perf_counter()
    uplink.start()
    if wait_connect:
        while not uplink.connected:
            time.sleep(0.001)
        start = time.perf_counter()
    uplink.notify()
    while (uplink.stats.confirmed if cloud_acked else uplink.stats.acked) < n:
        time.sleep(0.001)
    while outbox.stats().depth:
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    uplink.stop()
    outbox.close()
    return elapsed


def mqtt_uplink(
    outbox: SqliteOutbox, host: str, port: int, prefix: str, delivery: str = "cloud_ack"
) -> MqttUplink:
    """The production MQTT uplink on the bench broker."""
    cfg = MqttConfig.model_validate(
        {"host": host, "port": port, "topic_prefix": prefix, "max_inflight": INFLIGHT,
         "session_expiry_s": 0, "delivery": delivery}
    )  # fmt: skip
    return MqttUplink(
        cfg,
        IDENT,
        outbox,
        backoff=Backoff(0.05, 0.5),
        client_id=f"bench-{uuid.uuid4().hex[:8]}",
        presence=False,  # no retained status left behind on the broker
    )


class Responder:
    """The least a cloud must do: receive the envelopes and acknowledge each batch received
    with one DeliveryAck per device, every 5 ms at most. MQTT 3.1.1 on its side: paho decodes no
    MQTT 5 properties (the ingest has its own fast path for them, cloud/ingest/paho_props.py)."""

    def __init__(
        self, host: str, port: int, prefix: str, qos: int = 1, received: Any = None
    ) -> None:
        self.received = received  # a shared counter of messages received, or None
        self._got: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-cloud-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe([(f"{prefix}/+/+/window", qos), (f"{prefix}/+/+/health", qos)])
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("responder: no SUBACK")
        self._thread = threading.Thread(target=self._ack_loop, daemon=True)
        self._thread.start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._got.append((msg.topic, bytes(msg.payload)))
        if self.received is not None:
            self.received.value += 1  # the only writer

    def _ack_loop(self) -> None:
        while not self._stop.wait(0.005):
            with self._lock:
                got, self._got = self._got, []
            by_topic: dict[str, list[int]] = {}
            for topic, payload in got:
                seq = telemetry_pb2.Envelope.FromString(payload).sequence
                by_topic.setdefault(topic.rpartition("/")[0] + "/ack", []).append(seq)
            for topic, seqs in by_topic.items():
                ack = delivery_pb2.DeliveryAck()
                for s in sorted(seqs):  # one range per run of consecutive sequences
                    if ack.ranges and ack.ranges[-1].last + 1 == s:
                        ack.ranges[-1].last = s
                    else:
                        ack.ranges.add(first=s, last=s)
                self.client.publish(topic, ack.SerializeToString(), qos=1)

    def close(self) -> None:
        """Stop acknowledging and disconnect."""
        self._stop.set()
        self._thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()


def _serve_responder(
    host: str, port: int, prefix: str, qos: int, received: Any, ready: Any, stop: Any
) -> None:
    responder = Responder(host, port, prefix, qos, received)
    ready.set()
    stop.wait()
    responder.close()


class ResponderProcess:
    """The responder in its own process, as the ingest is (no GIL shared with the uplink)."""

    def __init__(self, host: str, port: int, prefix: str, qos: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self.received = ctx.Value("q", 0, lock=False)
        args = (host, port, prefix, qos, self.received, self._ready, self._stop)
        self._proc = ctx.Process(target=_serve_responder, args=args)
        self._proc.start()
        if not self._ready.wait(30):
            self._proc.kill()
            raise RuntimeError("the responder process did not subscribe")

    def wait_idle(self, quiet_s: float = 0.3) -> None:
        """Wait until the responder received nothing for `quiet_s` (the broker has forwarded
        everything of the previous run), so no run pays for the one before."""
        last, since = -1, time.monotonic()
        while time.monotonic() - since < quiet_s:
            now = self.received.value
            if now != last:
                last, since = now, time.monotonic()
            time.sleep(0.02)

    def close(self) -> None:
        """Stop the responder process."""
        self._stop.set()
        self._proc.join(10)


class _Ingest(ingest_pb2_grpc.TelemetryIngestServicer):
    def StreamEnvelopes(self, request_iterator, context):  # type: ignore[no-untyped-def]  # noqa: N802
        ok = ingest_pb2.ACK_STATUS_ACCEPTED
        for env in request_iterator:
            yield ingest_pb2.Ack(device_id=env.device_id, sequence=env.sequence, status=ok)


def median_of(label: str, repeat: int, run: object) -> float:
    """Run `run()` `repeat` times, printing progress; returns the median seconds."""
    times = []
    for k in range(repeat):
        t = float(run())  # type: ignore[operator]
        times.append(t)
        print(f"  {label} run {k + 1}/{repeat}: {t:.3f} s", file=sys.stderr, flush=True)
    return statistics.median(times)


class Bench:
    """Shared state of one benchmark run: broker, envelopes, a folder for outbox files."""

    def __init__(
        self, host: str, port: int, n: int, repeat: int, tmp: Path, responder_qos: int
    ) -> None:
        self.host, self.port, self.n, self.repeat, self.tmp = host, port, n, repeat, tmp
        self.prefix = f"bench/{uuid.uuid4().hex[:8]}/mallpulse/v1"
        self.envs = [window_envelope(f"cam{i % 4}", i) for i in range(n)]
        self._count = 0
        self.cloud = ResponderProcess(host, port, self.prefix, responder_qos)

    def outbox_of(self, items: list[telemetry_pb2.Envelope]) -> SqliteOutbox:
        """A fresh outbox file holding `items`."""
        self._count += 1
        return fill(self.tmp / f"o{self._count}.db", items)

    def mqtt_pairs(self) -> tuple[float, float, float]:
        """Median seconds of (bare paho, outbox -> MQTT -> cloud ack, outbox -> MQTT PUBACK),
        runs interleaved A B C A B C ..."""
        sample = self.outbox_of(self.envs)
        payloads = [e.payload for e in sample.peek(limit=self.n)]
        sample.close()
        # the responder receives the baseline's messages too: the broker does the same work
        topic = f"{self.prefix}/{IDENT.store_id}/{IDENT.device_id}/window"
        print(f"payload size: {len(payloads[0])} bytes; n={self.n}; in-flight={INFLIGHT}")
        runs = []
        idle = self.cloud.wait_idle
        for k in range(self.repeat):  # interleaved, so load from elsewhere hits all alike
            idle()
            b = bare_paho(self.host, self.port, payloads, topic)
            ob = self.outbox_of(self.envs)
            idle()
            u = drain(ob, mqtt_uplink(ob, self.host, self.port, self.prefix), wait_connect=True)
            ob = self.outbox_of(self.envs)
            old = mqtt_uplink(ob, self.host, self.port, self.prefix, delivery="broker_ack")
            idle()
            p = drain(ob, old, wait_connect=True)
            runs.append((b, u, p))
            line = f"bare paho {b:.3f} s, cloud-acked {u:.3f} s, PUBACK-deleted {p:.3f} s"
            print(f"  run {k + 1}/{self.repeat}: {line}", file=sys.stderr, flush=True)
        med = [statistics.median(r[i] for r in runs) for i in range(3)]
        return med[0], med[1], med[2]

    def backlog(self) -> tuple[int, float]:
        """(envelopes, median seconds) to drain one hour of a 4-camera gateway, connect included."""
        items = [window_envelope(f"cam{c}", i) for i in range(60) for c in range(4)]
        items += [health_envelope() for _ in range(120)]

        def run() -> float:
            ob = self.outbox_of(items)
            self.cloud.wait_idle()
            return drain(ob, mqtt_uplink(ob, self.host, self.port, self.prefix), wait_connect=False)

        return len(items), median_of("1 h backlog drain (mqtt)", self.repeat, run)

    def grpc(self) -> float:
        """Median seconds to drain the envelopes over gRPC to a loopback server."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        ingest_pb2_grpc.add_TelemetryIngestServicer_to_server(_Ingest(), server)
        gport = server.add_insecure_port("127.0.0.1:0")
        server.start()

        def run() -> float:
            ob = self.outbox_of(self.envs)
            cfg = GrpcConfig(target=f"127.0.0.1:{gport}")
            return drain(ob, GrpcUplink(cfg, IDENT, ob), wait_connect=True)

        try:
            return median_of("outbox->grpc", self.repeat, run)
        finally:
            server.stop(None)


def main() -> None:
    """Run the benchmark and print figures and ratios."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="envelopes per throughput run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median reported)")
    ap.add_argument("--broker", default="127.0.0.1:1883", help="MQTT broker host:port")
    ap.add_argument("--responder-qos", type=int, choices=(0, 1), default=1,
                    help="QoS of the responder's subscription (the ingest's is 1)")  # fmt: skip
    args = ap.parse_args()
    host, _, port_s = args.broker.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(host, int(port_s or 1883), args.n, args.repeat, Path(tmp), args.responder_qos)
        try:
            base, up, puback = bench.mqtt_pairs()
            n_bl, bl = bench.backlog()
        finally:
            bench.cloud.close()
        gr = bench.grpc()
    print(f"bare paho QoS 1:                   {args.n / base:10.0f} envelopes/s")
    print(f"outbox -> MQTT -> cloud ack:       {args.n / up:10.0f} envelopes/s")
    print(f"outbox -> MQTT PUBACK (broker_ack): {args.n / puback:9.0f} envelopes/s")
    print(f"ratio cloud-acked uplink/baseline: {base / up:10.2f}   (aim >= 0.7)")
    print(f"1 h backlog ({n_bl} envelopes) drained in {bl:.3f} s ({n_bl / bl:.0f}/s)")
    print(f"outbox -> gRPC (acked): {args.n / gr:10.0f} envelopes/s")


if __name__ == "__main__":
    main()
