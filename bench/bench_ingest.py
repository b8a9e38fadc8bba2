"""Benchmark: MQTT -> committed rows through `mallpulse cloud ingest`, against a raw COPY.

In one run, on a private database and a private Mosquitto:
  1. baseline: the same time-series rows COPYed straight into the same tables (one connection,
     one transaction per 500 envelopes' rows) - the ceiling for any ingest path; taken again
     just before each of the runs below, and each ratio uses the baseline next to it;
  2. one ingest process: N realistic window envelopes (13 rows each) published at QoS 1 as fast
     as one client can; timed from the first publish until the N-th envelope is committed;
  3. two ingest processes sharing the subscription ($share/...), same N, same timing;
  4. for diagnosis, IngestService alone (same envelopes, batches of 500, no broker or paho).
Prints rows/s of each and the ratios ingest/COPY (aim >= 0.5) and two/one (aim ~2x).

    python bench/bench_ingest.py [--n 20000] [--devices 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import psycopg
from bench_ingest_support import (
    bench_database,
    dead_letters,
    fleet,
    payloads,
    private_mosquitto,
    spawn_ingest,
    stored,
    truncate,
)  # fmt: skip
from paho.mqtt.enums import CallbackAPIVersion

from cloud.db.repositories.telemetry import copy_rows
from cloud.ingest.rows import COLUMNS, Batch


def copy_baseline(url: str, batch: Batch, per_tx: int) -> float:
    """Seconds to COPY every row of the batch, committing every `per_tx` rows per table."""
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        for table, rows in batch.rows.items():
            for i in range(0, len(rows), per_tx):
                copy_rows(conn, table, COLUMNS[table], rows[i : i + per_tx])
                conn.commit()
    return time.perf_counter() - start


def publish(port: int, msgs: list[tuple[str, bytes]], window: int = 500) -> None:
    """Publish at QoS 1 keeping at most `window` unacknowledged (paho slows down badly with
    thousands of messages queued inside the client)."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(window)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos: list[mqtt.MQTTMessageInfo] = []
    for i, (topic, payload) in enumerate(msgs):
        if i >= window:
            infos[i - window].wait_for_publish(60)
        infos.append(pub.publish(topic, payload, qos=1))
    for info in infos[-window:]:
        info.wait_for_publish(60)
    pub.loop_stop()
    pub.disconnect()


def run_ingest(
    url: str, port: int, msgs: list[tuple[str, bytes]], processes: int, workers: int = 2
) -> float:
    """Seconds for `processes` ingest processes to drain `msgs` from the broker into committed
    rows. The messages are published while the ledger table is locked (the processes receive
    them and wait), so the publisher's CPU is not part of the figure; the clock starts when the
    lock is released."""
    group = f"g{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url) as gate:
        gate.execute("LOCK TABLE envelopes IN ACCESS EXCLUSIVE MODE")
        env = {"MALLPULSE_INGEST_MQTT_WORKERS": str(workers)}
        procs = [spawn_ingest(url, port, f"bench-{group}-{i}", group, **env)
                 for i in range(processes)]  # fmt: skip
        try:
            publishers = [threading.Thread(target=publish, args=(port, msgs[i::2])) for i in (0, 1)]
            for t in publishers:
                t.start()
            for t in publishers:
                t.join()
            start = time.perf_counter()
            gate.commit()
            shown = start
            while (done := stored(url)) < len(msgs):
                time.sleep(0.02)
                now = time.perf_counter()
                if now - start > 300:
                    raise RuntimeError(f"stalled at {done} of {len(msgs)}: {dead_letters(url)}")
                if now - shown > 2:
                    print(f"  ... committed {done} / {len(msgs)}", flush=True)
                    shown = now
            return time.perf_counter() - start
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)


def run_service(url: str, msgs: list[tuple[str, bytes]], batch: int) -> float:
    """Seconds for IngestService alone (no broker, no paho) to store `msgs` in batches."""
    from psycopg_pool import ConnectionPool

    from cloud.ingest.service import IngestService
    from cloud.ingest.validate import Incoming, Limits

    items = []
    for topic, payload in msgs:
        store, device, kind = topic.split("/")[-3:]
        items.append(Incoming(payload, "mqtt", store_id=store, device_id=device, kind=kind))
    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        service = IngestService(pool, Limits())
        start = time.perf_counter()
        for i in range(0, len(items), batch):
            service.ingest(items[i : i + batch])
        return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="envelopes per run")
    ap.add_argument("--devices", type=int, default=200, help="simulated devices (4 per store)")
    ap.add_argument("--workers", type=int, default=2, help="MQTT worker threads per process")
    args = ap.parse_args()
    with bench_database() as url, private_mosquitto() as port:
        devices = fleet(url, max(1, args.devices // 4), 4)
        msgs, batch = payloads(devices, args.n)
        rows = batch.row_count
        print(f"{args.n} envelopes, {rows} time-series rows ({rows / args.n:.1f} per envelope)")
        per_tx = 500 * rows // args.n

        def copy_now(label: str) -> float:
            """A COPY baseline taken just before the run it is compared with (the shared
            machine's load drifts within seconds, so one early baseline would skew ratios)."""
            seconds = copy_baseline(url, batch, per_tx)
            truncate(url)
            print(f"COPY baseline      {rows / seconds:>10,.0f} rows/s  ({seconds:.2f} s, {label})")
            return seconds

        copy_svc = copy_now("before the service run")
        svc_s = run_service(url, msgs, 500)
        truncate(url)
        print(f"IngestService only {rows / svc_s:>10,.0f} rows/s  ({svc_s:.2f} s, batches of 500,"
              " no MQTT)")  # fmt: skip
        copy_one = copy_now("before the 1-process run")
        one_s = run_ingest(url, port, msgs, 1, args.workers)
        print(f"1 ingest process   {rows / one_s:>10,.0f} rows/s  ({one_s:.2f} s)"
              f"  {args.n / one_s:,.0f} env/s, {args.workers} worker(s)")  # fmt: skip
        truncate(url)
        copy_two = copy_now("before the 2-process run")
        two_s = run_ingest(url, port, msgs, 2, args.workers)
        print(f"2 ingest processes {rows / two_s:>10,.0f} rows/s  ({two_s:.2f} s)"
              f"  {args.n / two_s:,.0f} env/s")  # fmt: skip
        print(f"ratio service only / COPY {copy_svc / svc_s:.2f}")
        print(f"ratio 1 process / COPY   {copy_one / one_s:.2f}  (aim >= 0.5)")
        print(f"ratio 2 processes / COPY {copy_two / two_s:.2f}")
        print(f"ratio 2 / 1 processes    {one_s / two_s:.2f}  (aim ~2 with spare cores)")


if __name__ == "__main__":
    main()
