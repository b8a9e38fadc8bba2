"""Pure mapping of envelopes to rows, rollup increments, live state and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.ingest.rows import COLUMNS, Batch
from cloud.simulator.envelopes import health_envelope, window_envelope
from protos.mallpulse.v1 import telemetry_pb2

T = datetime(2026, 11, 24, 10, 59, tzinfo=UTC)


def _env(seq: int, end: datetime, **kw: object) -> telemetry_pb2.Envelope:
    return window_envelope(store_id="s", device_id="d", sequence=seq,
                           start=end - timedelta(minutes=1), end=end, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_rows_match_their_columns() -> None:
    batch = Batch()
    batch.add(_env(1, T, lines={"a": (1, 2)}, zones={"z": 3}, queues={"q": (2, 60.0)},
                   shelves={"sh": (4, 8.0)}, demographics={(3, 1): 2},
                   emotions={("z", telemetry_pb2.VALENCE_POSITIVE): 5}))  # fmt: skip
    batch.add(health_envelope(store_id="s", device_id="d", sequence=2, start=T, end=T))
    for table, rows in batch.rows.items():
        assert rows, table
        assert all(len(r) == len(COLUMNS[table]) for r in rows), table
    assert batch.rows["demographics"][0][5:] == ("25-34", "female", 2)
    assert batch.rows["emotions"][0][3:4] + batch.rows["emotions"][0][6:] == ("z", "positive", 5)
    assert batch.row_count == 7


def test_hourly_rollup_splits_by_window_start_hour() -> None:
    batch = Batch()
    batch.add(_env(1, T, lines={"a": (2, 0)}))  # 10:58-10:59
    batch.add(_env(2, T + timedelta(minutes=2), lines={"a": (3, 1)}))  # 11:00-11:01
    batch.add(_env(3, T + timedelta(minutes=3), lines={"a": (1, 0), "b": (5, 5)}))
    hour10, hour11 = T.replace(minute=0), T.replace(hour=11, minute=0)
    assert dict(batch.hourly) == {
        ("s", "a", hour10): [2, 0], ("s", "a", hour11): [4, 1], ("s", "b", hour11): [5, 5],
    }  # fmt: skip
    assert batch.events["s"]["in"] == 11 and batch.events["s"]["window_end"] == T + timedelta(
        minutes=3
    )


def test_live_state_keeps_the_latest_window() -> None:
    batch = Batch()
    batch.add(_env(2, T, zones={"z": 7}, queues={"q": (5, 10.0)}))
    batch.add(_env(1, T - timedelta(minutes=1), zones={"z": 1}, queues={"q": (1, 1.0)}))
    assert batch.live_zones[("s", "z")] == (T, 7)
    assert batch.live_queues[("s", "q")] == (T, 5, 10.0)
    assert ("s", "queue", "q") in batch.catalogue and ("s", "d", "cam-1") in batch.cameras


def test_utc_matches_protobuf_to_datetime() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from cloud.ingest.rows import utc

    for seconds, nanos in (
        (0, 0),
        (1_795_000_000, 999_999_999),
        (1_795_000_123, 1_500),
        (-86400, 7),
    ):
        ts = Timestamp(seconds=seconds, nanos=nanos)
        assert utc(ts) == ts.ToDatetime(tzinfo=UTC) and utc(ts).tzinfo is not None
