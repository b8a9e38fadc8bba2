"""Benchmark: end-to-end latency publish -> /footfall/live, and /footfall/live under load.

In one run, on a private database and Mosquitto, with `mallpulse cloud ingest` and
`mallpulse cloud api` as separate processes and the fleet simulator publishing in the
background (default 200 stores x 4 devices, one 60 s window per device per minute):
  1. latency: a probe device publishes a window whose zone occupancy is a fresh number and
     polls /footfall/live until it shows it; p50/p99 over --probes probes;
  2. throughput: --clients keep-alive clients request /footfall/live for --seconds, then the
     same load hits a bare FastAPI endpoint (constant JSON, same uvicorn settings) for the
     baseline; prints req/s, p50/p99 and the ratio live/bare.

    python bench/bench_live.py [--stores 200] [--devices 4] [--rate 0.0167] [--probes 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from bench_ingest_support import (
    PREFIX,
    REPO,
    bench_database,
    free_port,
    private_mosquitto,
    spawn_ingest,
    wait_port,
)
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.security import Role, issue_token
from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_device, create_store
from cloud.simulator.envelopes import window_envelope
from cloud.simulator.fleet import Fleet, FleetConfig, provision

SECRET = "bench-secret-6419141c349984bebf288ebe8004b997d45210a7f05ca398"


def serve_bare(port: int) -> None:
    """The baseline: a bare FastAPI endpoint under the same uvicorn settings."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/bare")
    def bare() -> dict[str, Any]:
        return {"store_id": "x", "occupancy": 1, "zones": [], "entrances": [], "queues": []}

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def spawn_api(url: str, port: int) -> subprocess.Popen[bytes]:
    """`mallpulse cloud api` in its own process."""
    env = {**os.environ, "MALLPULSE_DATABASE_URL": url, "MALLPULSE_JWT_SECRET": SECRET,
           "MALLPULSE_LOG_LEVEL": "WARNING", "MALLPULSE_DB_POOL_MAX": "10"}  # fmt: skip
    cmd = [sys.executable, "-m", "mallpulse", "cloud", "api", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    wait_port(port, 60)
    return proc


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) in milliseconds."""
    ordered = sorted(values)
    return 1000.0 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(api_port: int, mqtt_port: int, token: str, probes: int) -> list[float]:
    """Seconds from publishing a probe window to seeing it in /footfall/live."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mqtt_port)
    pub.loop_start()
    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    out = []
    base_seq = time.time_ns() // 1000
    for k in range(1, probes + 1):
        end = datetime.now(UTC)
        env = window_envelope(store_id="probe", device_id="probe-gw", sequence=base_seq + k,
                              start=end - timedelta(seconds=60), end=end,
                              zones={"probe-zone": k})  # fmt: skip
        t0 = time.perf_counter()
        pub.publish(f"{PREFIX}/probe/probe-gw/window", env.SerializeToString(), qos=1)
        while True:
            conn.request("GET", "/v1/stores/probe/footfall/live", headers=headers)
            body = json.loads(conn.getresponse().read())
            if any(z["occupancy"] == k for z in body["zones"]):
                break
            if time.perf_counter() - t0 > 10:
                raise RuntimeError(f"probe {k} not visible after 10 s")
            time.sleep(0.002)
        out.append(time.perf_counter() - t0)
        time.sleep(0.05)
    pub.loop_stop()
    pub.disconnect()
    return out


def load(port: int, path: str, token: str, clients: int, seconds: float) -> tuple[int, list[float]]:
    """(requests, latencies) of `clients` keep-alive clients hammering `path`."""
    lats: list[list[float]] = [[] for _ in range(clients)]
    errors: list[int] = []
    stop_at = time.perf_counter() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": f"Bearer {token}"}
        while (t0 := time.perf_counter()) < stop_at:
            conn.request("GET", path, headers=headers)
            res = conn.getresponse()
            res.read()
            if res.status != 200:
                errors.append(res.status)
            lats[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. HTTP {errors[0]}")
    flat = [x for lst in lats for x in lst]
    return len(flat), flat


def setup(url: str, args: argparse.Namespace, mqtt_port: int) -> Fleet:
    """Register the probe store and the simulated fleet."""
    with psycopg.connect(url) as conn:
        create_store(conn, store_id="probe", name="Probe", timezone="UTC")
        create_device(conn, store_id="probe", device_id="probe-gw")
    cfg = FleetConfig(stores=args.stores, devices_per_store=args.devices, rate=args.rate,
                      mqtt_port=mqtt_port, store_prefix="live")  # fmt: skip
    fleet = Fleet(cfg)
    with psycopg.connect(url) as conn:
        provision(conn, fleet.devices)
    return fleet


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stores", type=int, default=200)
    ap.add_argument("--devices", type=int, default=4, help="devices per store")
    ap.add_argument("--rate", type=float, default=1 / 60, help="windows/s per device")
    ap.add_argument("--probes", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    token = issue_token(Settings(jwt_secret=SECRET), subject="bench", role=Role.ADMIN)
    with bench_database() as url, private_mosquitto() as mqtt_port:
        fleet = setup(url, args, mqtt_port)
        ingest = spawn_ingest(url, mqtt_port, "live-0", "ingest")
        api_port, bare_port = free_port(), free_port()
        api = spawn_api(url, api_port)
        bare = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(bare_port)],
                                stderr=subprocess.DEVNULL)  # fmt: skip
        wait_port(bare_port, 60)
        fleet.start()
        try:
            total = args.stores * args.devices
            print(f"fleet: {args.stores} stores x {args.devices} devices = {total} devices,"
                  f" {total * args.rate:.1f} windows/s")  # fmt: skip
            time.sleep(3)
            lat = latency(api_port, mqtt_port, token, args.probes)
            p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
            print(f"publish -> /footfall/live  p50 {p50:.0f} ms  p99 {p99:.0f} ms"
                  f"  max {1000 * max(lat):.0f} ms  ({len(lat)} probes)")  # fmt: skip
            live_n, live_l = load(api_port, "/v1/stores/live-001/footfall/live", token,
                                  args.clients, args.seconds)  # fmt: skip
            bare_n, bare_l = load(bare_port, "/bare", token, args.clients, args.seconds)
            for name, n, lats in (
                ("/footfall/live", live_n, live_l),
                ("bare FastAPI", bare_n, bare_l),
            ):
                print(f"{name:15} {n / args.seconds:8.0f} req/s  p50 {pct(lats, 0.5):6.1f} ms"
                      f"  p99 {pct(lats, 0.99):6.1f} ms")  # fmt: skip
            print(f"ratio live / bare req/s  {live_n / bare_n:.2f}")
            print(f"simulator sent {fleet.stats.sent} envelopes, {fleet.stats.errors} errors;"
                  f" median probe {statistics.median(lat) * 1000:.0f} ms")  # fmt: skip
        finally:
            fleet.stop()
            for proc in (api, bare, ingest):
                proc.terminate()
                proc.wait(20)


if __name__ == "__main__":
    main()
