"""The domain-event outbox: emit in the writer's transaction, read by watermark, never skip an
id that an open transaction may still commit, pass ids that rolled back."""

from __future__ import annotations

from typing import Any

import psycopg

from cloud.core.domain_events import emit, load_cursor, read_after, save_cursor

Conn = psycopg.Connection[Any]


def _end(conn: Conn) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM domain_events").fetchone()
    conn.commit()
    return int(row[0]) if row else 0


def test_emit_is_visible_only_when_its_transaction_commits(seg_url: str) -> None:
    with psycopg.connect(seg_url) as reader, psycopg.connect(seg_url) as writer:
        mark = _end(reader)
        emit(writer, topic="test.thing", subject="profile:1", payload={"n": 1})
        events, new_mark = read_after(reader, watermark=mark)
        reader.commit()
        assert events == [] and new_mark == mark
        writer.commit()
        events, new_mark = read_after(reader, watermark=mark)
        assert [(e.topic, e.subject, e.payload) for e in events] == [
            ("test.thing", "profile:1", {"n": 1})
        ]
        assert new_mark == events[0].id


def test_read_never_passes_an_id_an_open_transaction_may_commit(seg_url: str) -> None:
    with (
        psycopg.connect(seg_url) as reader,
        psycopg.connect(seg_url) as slow,
        psycopg.connect(seg_url, autocommit=True) as fast,
    ):
        mark = _end(reader)
        first = emit(slow, topic="test.slow", subject="s", payload={})  # open, not committed
        second = emit(fast, topic="test.fast", subject="f", payload={})
        assert second > first
        events, new_mark = read_after(reader, watermark=mark)
        reader.commit()
        assert events == [] and new_mark == mark  # `second` waits behind `first`
        slow.commit()
        events, new_mark = read_after(reader, watermark=mark)
        reader.commit()
        assert [e.id for e in events] == [first, second] and new_mark == second


def test_ids_that_rolled_back_are_passed(seg_url: str) -> None:
    with psycopg.connect(seg_url) as reader, psycopg.connect(seg_url) as writer:
        mark = _end(reader)
        emit(writer, topic="test.lost", subject="x", payload={})
        writer.rollback()
        kept = emit(writer, topic="test.kept", subject="y", payload={})
        writer.commit()
        events, new_mark = read_after(reader, watermark=mark, topics=["test.kept"])
        assert [e.id for e in events] == [kept] and new_mark == kept


def test_topics_filter_but_the_watermark_moves_past_other_topics(seg_url: str) -> None:
    with psycopg.connect(seg_url, autocommit=True) as conn:
        mark = _end(conn)
        emit(conn, topic="test.a", subject="1", payload={})
        b = emit(conn, topic="test.b", subject="2", payload={})
        events, new_mark = read_after(conn, watermark=mark, topics=["test.a"])
        assert [e.topic for e in events] == ["test.a"] and new_mark == b


def test_cursor_round_trip(seg_url: str) -> None:
    with psycopg.connect(seg_url) as conn:
        assert load_cursor(conn, "test-consumer") == 0
        save_cursor(conn, "test-consumer", 42)
        conn.commit()
        assert load_cursor(conn, "test-consumer", lock=True) == 42
