"""Plain PostgreSQL and TimescaleDB give the same footfall answers for the same envelopes, late
ones included (0, 2, 5 and 20 days late), once the rollups have been refreshed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from cloud.core.security import Role, issue_token
from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.service import IngestService, Status
from cloud.ingest.validate import Incoming, Limits
from cloud.ml.footfall import service as ml_footfall
from cloud.simulator.envelopes import window_envelope
from tests.fixtures.services import PG_ADMIN_URL, _create_database, _drop_database
from tests.fixtures.tsdb import pause_timescale_jobs, run_timescale_jobs

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# Europe/Berlin reads hours and days from the hourly rollup; Asia/Kolkata (UTC+05:30) from the
# raw windows. Both feed the chain views.
STORES = {"eng-berlin": "Europe/Berlin", "eng-kolkata": "Asia/Kolkata"}
LATE_DAYS = (0, 2, 5, 20)
SECRET = "d3b07384d113edec49eaa6238ad5ff00c86dbd0a4c6b9a0e3f1e2d5c7b8a9f60"


def _window(store: str, seq: int, end: datetime, length: timedelta, rng: random.Random) -> bytes:
    env = window_envelope(
        store_id=store, device_id=f"{store}-gw", sequence=seq, start=end - length, end=end,
        lines={"door-a": (rng.randint(0, 9), rng.randint(0, 9)), "door-b": (rng.randint(0, 5), 0)},
        zones={"floor": rng.randint(0, 30)}, queues={"tills": (rng.randint(0, 6), 40.0)},
        shelves={"promo": (rng.randint(0, 4), 12.5)},
        demographics={(1, 1): rng.randint(0, 3), (2, 2): rng.randint(0, 3)},
    )  # fmt: skip
    return env.SerializeToString()


def _envelopes() -> tuple[list[Incoming], list[Incoming]]:
    """(on time: windows of 37 min over the last 26 days, late: 5-minute windows replayed 0, 2,
    5 and 20 days after they ended), the same bytes for both engines."""
    rng = random.Random(11)
    on_time, late = [], []
    for store in STORES:
        seq = 0
        end = NOW - timedelta(days=26)
        while end < NOW - timedelta(hours=1):
            seq += 1
            on_time.append(_window(store, seq, end, timedelta(minutes=37), rng))
            end += timedelta(minutes=37)
        for days in LATE_DAYS:
            for k in range(30):
                seq += 1
                end = NOW - timedelta(days=days, minutes=7 + 5 * k)
                late.append(_window(store, seq, end, timedelta(minutes=5), rng))
    as_items = lambda raw: [Incoming(p, "grpc") for p in raw]  # noqa: E731
    return as_items(on_time), as_items(late)


def _ingest(service: IngestService, items: list[Incoming]) -> None:
    for i in range(0, len(items), 200):
        outcomes = service.ingest(items[i : i + 200])
        assert {o.status for o in outcomes} == {Status.ACCEPTED}, outcomes[0].reason


def _refresh(url: str) -> None:
    """What runs in the background: TimescaleDB's refresh (and compression) policies."""
    run_timescale_jobs(url, "policy_compression", "policy_refresh_continuous_aggregate")


def _load(url: str, on_time: list[Incoming], late: list[Incoming]) -> None:
    pause_timescale_jobs(url)
    with psycopg.connect(url) as conn:
        for store, tz in STORES.items():
            create_store(conn, store_id=store, name=store, timezone=tz)
            create_device(conn, store_id=store, device_id=f"{store}-gw")
    with ConnectionPool(url, min_size=1, max_size=2) as pool:
        service = IngestService(pool, Limits())
        _ingest(service, on_time)
        _refresh(url)  # the history is materialised (and compressed) before the late windows
        _ingest(service, late)
    _refresh(url)
    with psycopg.connect(url) as conn:
        for store in STORES:
            ml_footfall.learn_store(conn, store_id=store)
        conn.commit()


def _requests() -> Iterator[tuple[str, str, dict[str, str]]]:
    """(name, path, query) of every footfall read."""
    span = {"from": (NOW - timedelta(days=27)).isoformat(), "to": NOW.isoformat()}
    week = {"from": (NOW - timedelta(days=6)).isoformat(), "to": span["to"]}
    yield "chain live", "/v1/chain/live", {}
    yield "chain footfall", "/v1/chain/footfall", span
    yield "chain footfall week", "/v1/chain/footfall", week
    for store in STORES:
        base = f"/v1/stores/{store}"
        yield f"{store} live", f"{base}/footfall/live", {}
        for bucket in ("15m", "1h", "1d"):
            yield f"{store} history {bucket}", f"{base}/footfall", {**span, "bucket": bucket}
        yield f"{store} history 1h week", f"{base}/footfall", {**week, "bucket": "1h"}
        yield f"{store} engagement", f"{base}/engagement", span
        yield f"{store} demographics", f"{base}/demographics", span
        yield f"{store} forecast", f"{base}/footfall/forecast", {"horizon": "24"}
        yield (
            f"{store} anomalies",
            f"{base}/footfall/anomalies",
            {"all_hours": "true", "limit": "1000"},
        )
        yield f"{store} store", base, {}


def _answers(url: str) -> dict[str, Any]:
    settings = Settings(database_url=url, jwt_secret=SECRET)
    headers = {"Authorization": f"Bearer {issue_token(settings, subject='t', role=Role.ADMIN)}"}
    from cloud.api.app import create_app

    answers: dict[str, Any] = {}
    with (
        ConnectionPool(url, min_size=1, max_size=4) as pool,
        TestClient(create_app(settings, pool=pool)) as client,
    ):
        for name, path, params in _requests():
            res = client.get(path, params=params, headers=headers)
            assert res.status_code == 200, f"{path}: {res.text}"
            answers[name] = res.json()
        for store in STORES:
            devices = client.get(f"/v1/stores/{store}/devices", headers=headers).json()
            answers[f"{store} devices"] = [
                {k: v for k, v in d.items() if k != "last_seen_at"} for d in devices
            ]
    return answers


@pytest.fixture(scope="module")
def answers(tsdb_admin_url: str) -> Iterator[dict[str, Any]]:
    """Every footfall answer of each engine after loading the same envelopes into both."""
    on_time, late = _envelopes()
    result: dict[str, Any] = {}
    made = []
    try:
        for engine, admin in (("plain", PG_ADMIN_URL), ("timescale", tsdb_admin_url)):
            url = _create_database(migrate=True, admin_url=admin)
            made.append(url)
            _load(url, on_time, late)
            result[engine] = _answers(url)
        with psycopg.connect(made[-1]) as conn:
            result["utc_1d"] = conn.execute(
                "SELECT (SELECT sum(in_count) FROM line_counts_utc_1d),"
                " (SELECT sum(in_count) FROM line_counts)"
            ).fetchone()
        yield result
    finally:
        for url in made:
            _drop_database(url)


def test_every_footfall_answer_is_the_same_on_both_engines(
    answers: dict[str, dict[str, Any]],
) -> None:
    plain, timescale = answers["plain"], answers["timescale"]
    assert plain.keys() == timescale.keys()
    differ = [k for k in plain if plain[k] != timescale[k]]
    assert differ == [], f"answers differ: {differ}"


def test_late_windows_are_in_the_history(answers: dict[str, dict[str, Any]]) -> None:
    # not equal by both being wrong: the hourly and daily series (rollups) hold every window the
    # 15-minute series (raw windows) holds, the late ones included
    for engine in ("plain", "timescale"):
        for store in STORES:
            totals = {b: answers[engine][f"{store} history {b}"]["totals"]["in_count"]
                      for b in ("15m", "1h", "1d")}  # fmt: skip
            assert totals["15m"] > 0 and totals["1h"] == totals["15m"] == totals["1d"], (
                engine, store, totals,
            )  # fmt: skip
    daily, raw = answers["utc_1d"]
    assert daily == raw
