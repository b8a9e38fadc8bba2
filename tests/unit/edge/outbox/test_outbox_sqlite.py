"""Unit tests of the SQLite outbox: sequencing, bounds, acks, stats, corruption."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest

from edge.outbox import OutboxCorruptError, OutboxError, SqliteOutbox, envelope_kind
from protos.mallpulse.v1 import telemetry_pb2


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def window(i: int = 0) -> telemetry_pb2.Envelope:
    env = telemetry_pb2.Envelope(device_id="d1", camera_id="c1")
    env.window.frames_processed = i
    return env


def health() -> telemetry_pb2.Envelope:
    env = telemetry_pb2.Envelope(device_id="d1")
    env.health.uptime_s = 1.0
    return env


@pytest.fixture
def outbox(tmp_path: Path) -> SqliteOutbox:
    return SqliteOutbox(tmp_path / "o.db")


def test_sequences_are_monotonic_and_stamped_into_the_bytes(outbox: SqliteOutbox) -> None:
    seqs = [outbox.put(window(i)) for i in range(3)] + outbox.put_many([health(), window(9)])
    assert seqs == [1, 2, 3, 4, 5]
    entries = outbox.peek(limit=10)
    assert [e.kind for e in entries] == ["window", "window", "window", "health", "window"]
    for e in entries:
        assert telemetry_pb2.Envelope.FromString(e.payload).sequence == e.sequence


def test_sequences_never_reused_after_drain_and_reopen(tmp_path: Path) -> None:
    ob = SqliteOutbox(tmp_path / "o.db")
    ob.put_many([window(), window()])
    assert ob.ack([1, 2]) == 2
    assert ob.stats().depth == 0
    ob.close()
    ob = SqliteOutbox(tmp_path / "o.db")
    assert ob.put(window()) == 3
    assert ob.stats().last_sequence == 3
    ob.close()


def test_peek_after_cursor_and_ack_counts_present_entries(outbox: SqliteOutbox) -> None:
    outbox.put_many([window(i) for i in range(5)])
    assert [e.sequence for e in outbox.peek(after=2, limit=2)] == [3, 4]
    assert outbox.ack([1, 3, 99]) == 2
    assert outbox.ack([]) == 0
    assert [e.sequence for e in outbox.peek(limit=10)] == [2, 4, 5]


def test_full_outbox_drops_oldest_and_counts(tmp_path: Path) -> None:
    ob = SqliteOutbox(tmp_path / "o.db", max_entries=10)
    for i in range(14):
        ob.put(window(i))
    stats = ob.stats()
    assert (stats.depth, stats.dropped_total, stats.last_sequence) == (10, 4, 14)
    assert [e.sequence for e in ob.peek(limit=100)] == list(range(5, 15))
    ob.close()


def test_entries_older_than_max_age_are_dropped(tmp_path: Path) -> None:
    clock = Clock()
    ob = SqliteOutbox(tmp_path / "o.db", max_age_s=100, clock=clock)
    ob.put_many([window(), window()])
    clock.t += 50
    ob.put(window())
    assert ob.stats().oldest_age_s == pytest.approx(50)
    clock.t += 60  # the first two are now 110 s old
    assert ob.expire() == 2
    stats = ob.stats()
    assert (stats.depth, stats.dropped_total) == (1, 2)
    assert stats.oldest_age_s == pytest.approx(60)
    ob.close()


def test_empty_stats(outbox: SqliteOutbox) -> None:
    assert outbox.stats() == type(outbox.stats())(0, 0.0, 0, 0)


def test_envelope_without_payload_is_refused(outbox: SqliteOutbox) -> None:
    with pytest.raises(OutboxError, match="without payload"):
        outbox.put(telemetry_pb2.Envelope(device_id="d1"))
    with pytest.raises(OutboxError):
        envelope_kind(telemetry_pb2.Envelope())
    assert outbox.stats().last_sequence == 0


def test_concurrent_writers_get_unique_contiguous_sequences(outbox: SqliteOutbox) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(20):
            seq = outbox.put(window())
            with lock:
                got.append(seq)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 81))


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "o.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutboxCorruptError, match=str(bad)):
        SqliteOutbox(bad)


def test_closed_outbox_refuses_use(tmp_path: Path) -> None:
    ob = SqliteOutbox(tmp_path / "o.db")
    ob.close()
    with pytest.raises(OutboxError, match="closed"):
        ob.put(window())


def test_database_runs_in_wal_mode(outbox: SqliteOutbox, tmp_path: Path) -> None:
    import sqlite3

    outbox.put(window())
    conn = sqlite3.connect(tmp_path / "o.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_kept_depth_matches_the_table_through_every_operation(tmp_path: Path) -> None:
    import sqlite3

    clock = Clock()
    ob = SqliteOutbox(tmp_path / "o.db", max_entries=12, max_age_s=100, clock=clock)

    def real_depth() -> int:
        conn = sqlite3.connect(tmp_path / "o.db")
        try:
            return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            conn.close()

    ob.put_many([window(i) for i in range(8)])
    assert ob.stats().depth == real_depth() == 8
    ob.ack([2, 3, 3, 50])  # a repeated and an unknown sequence change nothing extra
    assert ob.stats().depth == real_depth() == 6
    ob.put_many([window(i) for i in range(10)])  # 16 > 12: the 4 oldest go
    assert ob.stats().depth == real_depth() == 12
    clock.t += 150
    ob.put(window())  # everything else is now too old
    assert ob.stats().depth == real_depth() == 1
    assert ob.stats().dropped_total == 4 + 12
    ob.close()
    reopened = SqliteOutbox(tmp_path / "o.db")
    assert reopened.stats().depth == 1
    reopened.close()


def _execute(path: Path, sql: str) -> None:
    """Run one statement on a connection of its own (another process, say)."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql)


def test_a_failed_write_rolls_back_whole_and_the_outbox_stays_usable(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "o.db")
    _execute(  # the second insert of the batch fails
        tmp_path / "o.db",
        "CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.kind = 'health' "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
    )
    with pytest.raises(OutboxError, match=r"cannot store envelopes in .*disk says no"):
        outbox.put_many([window(1), health()])
    assert outbox.peek() == [] and outbox.stats().depth == 0
    assert outbox.put(window(2)) == 1  # the aborted batch used no sequence; no open transaction
    _execute(
        tmp_path / "o.db",
        "CREATE TRIGGER keep BEFORE DELETE ON outbox BEGIN SELECT RAISE(ABORT, 'no'); END",
    )
    with pytest.raises(OutboxError, match="cannot delete acknowledged entries"):
        outbox.ack([1])
    assert [e.sequence for e in outbox.peek()] == [1] and outbox.stats().depth == 1
    outbox.close()


def test_ack_ranges_delete_inclusive_ranges_and_keep_the_depth(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "o.db")
    box.put_many([window(i) for i in range(10)])
    assert box.ack_ranges([(2, 4), (9, 2**62), (20, 30)]) == 5
    assert [e.sequence for e in box.peek(limit=100)] == [1, 5, 6, 7, 8]
    assert box.stats().depth == 5
    assert box.ack_ranges([]) == 0
    box.close()


def test_read_returns_the_stored_ones_of_given_sequences(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "o.db")
    box.put_many([window(i) for i in range(1200)])
    box.ack([3])
    wanted = [1200, 3, 2, 1100, 5000, *range(10, 700)]
    got = [e.sequence for e in box.read(wanted)]
    assert got == sorted(set(wanted) - {3, 5000})
    assert box.read([]) == []
    box.close()
