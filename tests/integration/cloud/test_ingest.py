"""IngestService on the real database: idempotency, rollups, live state and dead letters."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.service import IngestService, Status
from cloud.ingest.validate import Incoming, Limits
from cloud.simulator.envelopes import health_envelope, window_envelope
from protos.mallpulse.v1 import telemetry_pb2

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def fleet(pg_pool: Any) -> dict[str, str]:
    """Two fresh stores with one device each."""
    tag = uuid.uuid4().hex[:8]
    ids = {"store": f"s-{tag}", "other": f"o-{tag}", "dev": f"d-{tag}", "odev": f"od-{tag}"}
    with pg_pool.connection() as conn:
        create_store(conn, store_id=ids["store"], name="Store", timezone="Europe/Berlin")
        create_store(conn, store_id=ids["other"], name="Other", timezone="UTC")
        ids["cred"] = create_device(conn, store_id=ids["store"], device_id=ids["dev"])
        create_device(conn, store_id=ids["other"], device_id=ids["odev"])
    return ids


@pytest.fixture
def service(pg_pool: Any) -> IngestService:
    """An IngestService on the session database."""
    return IngestService(pg_pool, Limits(max_bytes=4096))


def _window(fleet: dict[str, str], seq: int, **kw: Any) -> telemetry_pb2.Envelope:
    end = kw.pop("end", NOW)
    return window_envelope(
        store_id=kw.pop("store_id", fleet["store"]), device_id=kw.pop("device_id", fleet["dev"]),
        sequence=seq, start=end - timedelta(minutes=1), end=end, **kw,
    )  # fmt: skip


def _mqtt(env: telemetry_pb2.Envelope | bytes, store: str, device: str) -> Incoming:
    raw = env if isinstance(env, bytes) else env.SerializeToString()
    return Incoming(raw, "mqtt", topic=f"t/{store}/{device}/window", store_id=store,
                    device_id=device, kind="window")  # fmt: skip


def _scalar(pg_pool: Any, sql: str, *args: Any) -> Any:
    with pg_pool.connection() as conn:
        row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def test_same_envelope_twice_counts_once(
    service: IngestService, fleet: dict[str, str], pg_pool: Any
) -> None:
    env = _window(fleet, 1, lines={"door": (5, 2)}, zones={"floor": 7}, queues={"till": (3, 90.0)})
    item = _mqtt(env, fleet["store"], fleet["dev"])
    first = service.ingest([item, item])
    assert [o.status for o in first] == [Status.ACCEPTED, Status.DUPLICATE]
    assert service.ingest([item])[0].status is Status.DUPLICATE
    s = fleet["store"]
    assert _scalar(pg_pool, "SELECT sum(in_count) FROM line_counts WHERE store_id=%s", s) == 5
    assert _scalar(pg_pool, "SELECT sum(in_count) FROM line_counts_1h WHERE store_id=%s", s) == 5
    assert _scalar(pg_pool, "SELECT sum(out_count) FROM line_counts_1d WHERE store_id=%s", s) == 2
    assert _scalar(pg_pool, "SELECT occupancy FROM live_zones WHERE store_id=%s", s) == 7
    assert _scalar(pg_pool, "SELECT length FROM live_queues WHERE store_id=%s", s) == 3
    assert _scalar(pg_pool, "SELECT count(*) FROM footfall_events WHERE store_id=%s", s) == 1
    assert _scalar(pg_pool, "SELECT count(*) FROM lines WHERE store_id=%s", s) == 1


def test_older_window_does_not_overwrite_live_state(
    service: IngestService, fleet: dict[str, str], pg_pool: Any
) -> None:
    store, dev = fleet["store"], fleet["dev"]
    newer = _window(fleet, 10, zones={"floor": 4})
    older = _window(fleet, 9, zones={"floor": 40}, end=NOW - timedelta(minutes=5))
    service.ingest([_mqtt(newer, store, dev)])
    service.ingest([_mqtt(older, store, dev)])
    assert _scalar(pg_pool, "SELECT occupancy FROM live_zones WHERE store_id=%s", store) == 4


def test_health_is_stored(service: IngestService, fleet: dict[str, str], pg_pool: Any) -> None:
    env = health_envelope(store_id=fleet["store"], device_id=fleet["dev"], sequence=5,
                          start=NOW - timedelta(seconds=30), end=NOW)  # fmt: skip
    item = Incoming(env.SerializeToString(), "mqtt", store_id=fleet["store"],
                    device_id=fleet["dev"], kind="health")  # fmt: skip
    assert service.ingest([item])[0].status is Status.ACCEPTED
    sql = "SELECT cpu_percent FROM device_health WHERE device_id=%s"
    assert _scalar(pg_pool, sql, fleet["dev"]) == 35.0


def _bad_inputs(f: dict[str, str]) -> dict[str, Incoming]:
    s, d = f["store"], f["dev"]
    good = _window(f, 100, lines={"door": (1, 1)})
    future = _window(f, 101, end=NOW + timedelta(hours=2))
    old = _window(f, 102, end=NOW - timedelta(days=90))
    huge = _window(f, 103, lines={"door": (10**6, 0)})
    nan = _window(f, 104, zones={"floor": 1})
    nan.window.zones[0].avg_occupancy = math.nan
    bad_hist = _window(f, 105, zones={"floor": 1})
    bad_hist.window.zones[0].dwell.counts.append(1)
    empty = telemetry_pb2.Envelope(schema_version=1, device_id=d, store_id=s, sequence=106)
    empty.window_start.FromDatetime(NOW - timedelta(minutes=1))
    empty.window_end.FromDatetime(NOW)
    v2 = _window(f, 107)
    v2.schema_version = 9
    ghost = _window(f, 108, device_id="ghost-" + d)
    other = _window(f, 109, store_id=f["other"])
    return {
        "bad_protobuf": _mqtt(b"\xff\xff\xff not protobuf", s, d),
        "oversize": _mqtt(_window(f, 110, shelves={f"sh{i}": (1, 1.0) for i in range(400)}), s, d),
        "out_of_range:future": _mqtt(future, s, d),
        "out_of_range:old": _mqtt(old, s, d),
        "out_of_range:count": _mqtt(huge, s, d),
        "out_of_range:nan": _mqtt(nan, s, d),
        "bad_payload:histogram": _mqtt(bad_hist, s, d),
        "bad_payload:empty": _mqtt(empty, s, d),
        "unsupported_schema": _mqtt(v2, s, d),
        "unknown_device": _mqtt(ghost, s, ghost.device_id),
        "store_mismatch:topic": _mqtt(other, s, d),
        "store_mismatch:device": _mqtt(other, f["other"], d),
        "device_mismatch": _mqtt(good, s, f["odev"]),
    }


def test_every_malformed_kind_is_dead_lettered_and_the_rest_stored(
    service: IngestService, fleet: dict[str, str], pg_pool: Any
) -> None:
    bad = _bad_inputs(fleet)
    good = _mqtt(_window(fleet, 500, lines={"door": (3, 0)}), fleet["store"], fleet["dev"])
    items = list(bad.values())
    outcomes = service.ingest([*items[:5], good, *items[5:]])
    assert outcomes[5].status is Status.ACCEPTED
    verdicts = outcomes[:5] + outcomes[6:]
    for (case, _), outcome in zip(bad.items(), verdicts, strict=True):
        assert outcome.status is Status.REJECTED, case
        assert outcome.reason.startswith(case.partition(":")[0] + ":"), (case, outcome.reason)
    with pg_pool.connection() as conn:
        rows = conn.execute(
            "SELECT reason_code, reason, octet_length(payload) FROM dead_letters"
            " WHERE topic LIKE %s ORDER BY id",
            (f"t/%/{fleet['dev']}/window",),
        ).fetchall()
    codes = [r[0] for r in rows if r[0] != "unknown_device"]
    expected = [c.partition(":")[0] for c in bad if c not in ("unknown_device", "device_mismatch")]
    assert codes == expected
    assert all(r[1] and r[2] > 0 for r in rows)
    total = _scalar(pg_pool, "SELECT sum(in_count) FROM line_counts WHERE store_id=%s",
                    fleet["store"])  # fmt: skip
    assert total == 3


def test_unknown_device_dead_letter_keeps_its_ids(
    service: IngestService, fleet: dict[str, str], pg_pool: Any
) -> None:
    ghost = _window(fleet, 7, device_id="ghost-" + fleet["dev"])
    service.ingest([_mqtt(ghost, fleet["store"], ghost.device_id)])
    row_sql = "SELECT reason_code, sequence FROM dead_letters WHERE device_id=%s"
    with pg_pool.connection() as conn:
        assert conn.execute(row_sql, (ghost.device_id,)).fetchone() == ("unknown_device", 7)


def test_database_down_raises_and_acknowledges_nothing(fleet: dict[str, str]) -> None:
    from psycopg_pool import ConnectionPool

    from cloud.ingest.errors import IngestError

    dead = ConnectionPool(
        "postgresql://postgres@127.0.0.1:1/none", min_size=0, max_size=1, open=True, timeout=0.5
    )
    try:
        with pytest.raises(IngestError, match="database unavailable"):
            IngestService(dead, Limits()).ingest([_mqtt(_window(fleet, 1), "s", "d")])
    finally:
        dead.close()


class _PickyService(IngestService):
    """Refuses (like a database constraint would) any batch holding line 'poison'."""

    def _write(self, conn: Any, batch: Any) -> None:
        import psycopg

        if any(row[3] == "poison" for row in batch.rows["line_counts"]):
            raise psycopg.errors.CheckViolation("line 'poison' violates a check")
        super()._write(conn, batch)


def test_a_batch_the_database_refuses_is_isolated(fleet: dict[str, str], pg_pool: Any) -> None:
    svc = _PickyService(pg_pool, Limits())
    s, d = fleet["store"], fleet["dev"]
    items = [_mqtt(_window(fleet, seq, lines={name: (1, 0)}), s, d)
             for seq, name in ((1, "door"), (2, "poison"), (3, "door"))]  # fmt: skip
    outcomes = svc.ingest(items)
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.REJECTED, Status.ACCEPTED]
    assert outcomes[1].reason.startswith("unprocessable: refused by the database")
    assert _scalar(pg_pool, "SELECT sum(in_count) FROM line_counts WHERE store_id=%s", s) == 2
    sql = "SELECT count(*) FROM dead_letters WHERE reason_code = 'unprocessable' AND device_id=%s"
    assert _scalar(pg_pool, sql, d) == 1


class _BuggyMappingService(IngestService):
    """Fails to map (like an unforeseen value would) any batch holding line 'poison'."""

    def _write(self, conn: Any, batch: Any) -> None:
        if any(row[3] == "poison" for row in batch.rows["line_counts"]):
            raise OverflowError("value the mapping did not foresee")
        super()._write(conn, batch)


def test_a_batch_that_cannot_be_mapped_is_isolated_not_retried(
    fleet: dict[str, str], pg_pool: Any
) -> None:
    svc = _BuggyMappingService(pg_pool, Limits())
    s, d = fleet["store"], fleet["dev"]
    items = [_mqtt(_window(fleet, seq, lines={name: (1, 0)}), s, d)
             for seq, name in ((11, "door"), (12, "poison"), (13, "door"))]  # fmt: skip
    outcomes = svc.ingest(items)  # no exception: nothing is left for endless redelivery
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.REJECTED, Status.ACCEPTED]
    assert outcomes[1].reason.startswith("unprocessable: could not be stored: OverflowError")
    sql = ("SELECT count(*) FROM dead_letters WHERE reason_code = 'unprocessable'"
           " AND reason LIKE 'could not be stored%%' AND device_id=%s")  # fmt: skip
    assert _scalar(pg_pool, sql, d) == 1


def test_health_text_must_be_printable(service: IngestService, fleet: dict[str, str]) -> None:
    env = health_envelope(store_id=fleet["store"], device_id=fleet["dev"], sequence=9,
                          start=NOW - timedelta(seconds=30), end=NOW)  # fmt: skip
    env.health.software_version = "1.0\x00evil"
    item = Incoming(env.SerializeToString(), "mqtt", store_id=fleet["store"],
                    device_id=fleet["dev"], kind="health")  # fmt: skip
    outcome = service.ingest([item])[0]
    assert outcome.status is Status.REJECTED and outcome.reason.startswith("bad_payload")
