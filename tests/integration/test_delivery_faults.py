"""Zero loss over MQTT, end to end, with real processes (issue 11): edge daemons publish through
a private Mosquitto into real ingest processes while the test breaks things. Afterwards the
envelope ledger holds exactly 1..N of every device: no gap, no duplicate (and `line_counts`,
one person per window, sums to N: nothing stored twice). Each test prints its figures.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.fleet import Gateway, IngestProc, ingest_env, landed, register
from tests.support.mqtt import Broker, wait_until

pytestmark = pytest.mark.integration


@dataclass
class Cloud:
    broker: Broker
    prefix: str
    store: str
    env: dict[str, str]
    tmp: Path
    tag: str

    def gateways(self, pg_pool: Any, n: int, windows: int) -> list[Gateway]:
        devices = [f"gw{i}-{self.tag}" for i in range(n)]
        register(pg_pool, self.store, devices)
        return [Gateway(d, self.store, self.tmp / d, self.broker.port, self.prefix, windows)
                for d in devices]  # fmt: skip

    def ingests(self, n: int) -> list[IngestProc]:
        return [IngestProc(self.env, f"in{i}-{self.tag}", self.tmp / f"ingest{i}.log")
                for i in range(n)]  # fmt: skip


@pytest.fixture
def cloud(tmp_path: Path, database_url: str) -> Iterator[Cloud]:
    broker = Broker(tmp_path)
    broker.start()
    prefix = f"mptest/{uuid.uuid4().hex[:10]}/mallpulse/v1"
    tag = uuid.uuid4().hex[:6]
    env = ingest_env(database_url, broker.port, prefix)
    yield Cloud(broker, prefix, f"faults-{tag}", env, tmp_path, tag)
    broker.stop()


def _count(pg_pool: Any, gw: Gateway) -> int:
    return len(landed(pg_pool, gw.device_id)[0])


def _finish(
    pg_pool: Any, gateways: list[Gateway], produced: list[int], what: str, timeout: float = 90.0
) -> None:
    """Wait until every window produced is confirmed, stop the daemons (each flushes one more
    window and drains), then check the ledger of every device and print the figures."""
    for gw, total in zip(gateways, produced, strict=True):
        _wait_confirmed(gw, total, timeout)
    for gw in gateways:
        assert gw.stop() == 0, gw.log.read_text()[-2000:]
    for gw in gateways:
        last, depth = gw.outbox()
        assert depth == 0, f"{gw.device_id}: {depth} left in the outbox after the drain"
        _wait_landed(pg_pool, gw, last)
        time.sleep(0.3)  # a late copy would show up now
        seqs, people = landed(pg_pool, gw.device_id)
        print(f"\n{what}: {gw.device_id} sent={last} resent={gw.resent()} landed={len(seqs)} "
              f"people={people}")  # fmt: skip
        odd = sorted(set(range(1, last + 1)) ^ set(seqs))[:20]
        assert seqs == list(range(1, last + 1)), f"gap or extra: {odd}"
        assert people == last  # each window counted one person, each exactly once


def _wait_confirmed(gw: Gateway, total: int, timeout: float) -> None:
    what = f"{gw.device_id}: {total} windows produced and confirmed"
    wait_until(lambda: gw.outbox() == (total, 0), timeout, what)


def _wait_landed(pg_pool: Any, gw: Gateway, last: int) -> None:
    what = f"{gw.device_id}: {last} envelopes in the ledger"
    wait_until(lambda: _count(pg_pool, gw) >= last, 30, what)


def _start(ingests: list[IngestProc], gateways: list[Gateway]) -> None:
    for ing in ingests:
        ing.start()
    for gw in gateways:
        gw.start()


def _stop_all(gateways: list[Gateway], ingests: list[IngestProc]) -> None:
    for gw in gateways:
        if gw.proc is not None:
            gw.proc.kill()
            gw.proc.wait(10)
    for ing in ingests:
        ing.stop()


def test_a_broker_restart_while_gateways_publish_and_the_ingest_reconnects_last(
    cloud: Cloud, pg_pool: Any
) -> None:
    gateways = cloud.gateways(pg_pool, 2, windows=150)
    ingests = cloud.ingests(2)
    try:
        _start(ingests, gateways)
        wait_until(lambda: all(_count(pg_pool, g) >= 20 for g in gateways), 60, "first windows")
        for ing in ingests:  # frozen: they reconnect only after the gateways published
            ing.signal(signal.SIGSTOP)
        cloud.broker.stop()
        cloud.broker.start()
        time.sleep(3.0)  # the gateways reconnect within 0.3 s and publish with nobody subscribed
        for ing in ingests:
            ing.signal(signal.SIGCONT)
        _finish(pg_pool, gateways, [150, 150], "broker restart")
        assert sum(g.resent() for g in gateways) > 0, "nothing was lost: nothing was tested"
    finally:
        _stop_all(gateways, ingests)


@pytest.mark.slow
def test_b_every_ingest_process_down_for_60_s(cloud: Cloud, pg_pool: Any) -> None:
    gateways = cloud.gateways(pg_pool, 1, windows=800)
    ingests = cloud.ingests(2)
    try:
        _start(ingests, gateways)
        wait_until(lambda: _count(pg_pool, gateways[0]) >= 20, 60, "first windows")
        for ing in ingests:
            ing.stop()
        down_at = _count(pg_pool, gateways[0])
        time.sleep(60.0)
        assert _count(pg_pool, gateways[0]) == down_at  # nobody stored anything meanwhile
        waiting = gateways[0].outbox()[1]
        for ing in ingests:
            ing.start()
        print(f"\ningest outage: {waiting} envelopes waited in the outbox")
        _finish(pg_pool, gateways, [800], "60 s ingest outage", timeout=150.0)
        assert waiting >= 500  # 60 s at 10 windows/s were kept, not deleted on PUBACK
    finally:
        _stop_all(gateways, ingests)


def test_c_edge_daemon_sigkilled_with_a_backlog(cloud: Cloud, pg_pool: Any) -> None:
    gateways = cloud.gateways(pg_pool, 1, windows=100)
    gw = gateways[0]
    ingests = cloud.ingests(1)
    try:
        _start(ingests, gateways)
        wait_until(lambda: _count(pg_pool, gw) >= 20, 60, "first windows")
        ingests[0].signal(signal.SIGSTOP)  # nothing is confirmed: a backlog builds up
        wait_until(lambda: gw.outbox()[1] >= 30, 30, "a backlog of 30")
        gw.kill()
        killed_at, backlog = gw.outbox()
        gw.start()  # the same outbox; its pipeline produces 100 more windows
        ingests[0].signal(signal.SIGCONT)
        print(f"\ndaemon SIGKILL: backlog={backlog} at sequence {killed_at}")
        _finish(pg_pool, gateways, [killed_at + 100], "daemon SIGKILL")
        assert backlog >= 30
    finally:
        _stop_all(gateways, ingests)


def test_d_ingest_sigkilled_mid_batch(cloud: Cloud, pg_pool: Any) -> None:
    gateways = cloud.gateways(pg_pool, 2, windows=150)
    ingests = cloud.ingests(1)
    try:
        _start(ingests, gateways)
        wait_until(lambda: all(_count(pg_pool, g) >= 30 for g in gateways), 60, "first windows")
        ingests[0].kill()
        killed_at = [_count(pg_pool, g) for g in gateways]
        ingests[0].start()  # same instance id: the broker redelivers what was not PUBACKed
        _finish(pg_pool, gateways, [150, 150], "ingest SIGKILL")
        assert all(k < 150 for k in killed_at), "the kill came after everything was stored"
    finally:
        _stop_all(gateways, ingests)
