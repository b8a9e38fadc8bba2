"""Membership is never deleted and re-added: a member who still matches keeps entered_at, exit
sets exited_at, a re-entry moves the past stint to history; entries and exits are domain
events; merges, late changes and lapsing windows are followed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cloud.core.domain_events import read_after
from cloud.crm.segments import handlers, service
from cloud.crm.segments import rules as r
from tests.integration.cloud.segments.world import NOW

Conn = psycopg.Connection[Any]

DE = r.AttributeRule(type="attribute", attribute="country", op="eq", value="DE")
VIEWED = r.EventRule(type="event", event="view", min_count=1, within_days=7)


def _profile(conn: Conn, attrs: dict[str, Any]) -> int:
    row = conn.execute(
        "INSERT INTO crm_profiles (attributes) VALUES (%s) RETURNING id", (Jsonb(attrs),)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _view(conn: Conn, pid: int, at: Any) -> None:
    conn.execute(
        "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
        " profile_id) VALUES (%s, %s, 'seg', gen_random_uuid()::text, 'track', 'view', %s)",
        (at, at, pid),
    )


def _row(conn: Conn, sid: int, pid: int) -> tuple[Any, Any] | None:
    return conn.execute(
        "SELECT entered_at, exited_at FROM crm_segment_members WHERE segment_id = %s"
        " AND profile_id = %s",
        (sid, pid),
    ).fetchone()


def _events(conn: Conn, mark: int, sid: int) -> list[tuple[str, int]]:
    got, _ = read_after(conn, watermark=mark, topics=["segment.entered", "segment.exited"])
    return [
        (e.topic, int(str(e.payload["profile_id"]))) for e in got if e.payload["segment_id"] == sid
    ]


def test_stay_exit_and_return_keep_the_history(seg_conn: Conn) -> None:
    with seg_conn.transaction(force_rollback=True):
        handlers.process_all(seg_conn, now=NOW)
        mark = read_after(seg_conn, watermark=0, limit=1_000_000)[1]
        pid = _profile(seg_conn, {"country": "DE"})
        seg = service.create(
            seg_conn, name="de", description="", kind="dynamic", rule=DE, actor="t", now=NOW
        )
        first = _row(seg_conn, seg.id, pid)
        assert first is not None and first == (NOW, None)
        # a change that keeps them in: the row is not touched
        seg_conn.execute(
            "UPDATE crm_profiles SET attributes = %s WHERE id = %s",
            (Jsonb({"country": "DE", "city": "Köln"}), pid),
        )
        handlers.process_all(seg_conn, now=NOW + timedelta(hours=1))
        assert _row(seg_conn, seg.id, pid) == (NOW, None)
        # leaves: the row stays, with exited_at
        seg_conn.execute("UPDATE crm_profiles SET attributes = '{}' WHERE id = %s", (pid,))
        handlers.process_all(seg_conn, now=NOW + timedelta(hours=2))
        assert _row(seg_conn, seg.id, pid) == (NOW, NOW + timedelta(hours=2))
        # returns: a new stint; the old one is in the history
        seg_conn.execute(
            "UPDATE crm_profiles SET attributes = %s WHERE id = %s", (Jsonb({"country": "DE"}), pid)
        )
        handlers.process_all(seg_conn, now=NOW + timedelta(hours=3))
        assert _row(seg_conn, seg.id, pid) == (NOW + timedelta(hours=3), None)
        hist = seg_conn.execute(
            "SELECT entered_at, exited_at FROM crm_segment_member_history WHERE segment_id = %s",
            (seg.id,),
        ).fetchall()
        assert hist == [(NOW, NOW + timedelta(hours=2))]
        assert _events(seg_conn, mark, seg.id) == [
            ("segment.entered", pid),
            ("segment.exited", pid),
            ("segment.entered", pid),
        ]


def test_an_event_enters_and_the_sweep_lets_it_lapse(seg_conn: Conn) -> None:
    with seg_conn.transaction(force_rollback=True):
        handlers.process_all(seg_conn, now=NOW)
        pid = _profile(seg_conn, {})
        seg = service.create(
            seg_conn,
            name="viewers",
            description="",
            kind="dynamic",
            rule=VIEWED,
            actor="t",
            now=NOW,
        )
        assert _row(seg_conn, seg.id, pid) is None
        _view(seg_conn, pid, NOW - timedelta(days=1))
        handlers.process_all(seg_conn, now=NOW)
        assert _row(seg_conn, seg.id, pid) == (NOW, None)
        # nothing new about them: only the sweep sees the window pass
        handlers.process_all(seg_conn, now=NOW + timedelta(days=7))
        assert _row(seg_conn, seg.id, pid) == (NOW, None)
        service.sweep(seg_conn, now=NOW + timedelta(days=7))
        assert _row(seg_conn, seg.id, pid) == (NOW, NOW + timedelta(days=7))


def test_a_merge_moves_membership_to_the_survivor(seg_conn: Conn) -> None:
    with seg_conn.transaction(force_rollback=True):
        handlers.process_all(seg_conn, now=NOW)
        survivor, absorbed = _profile(seg_conn, {}), _profile(seg_conn, {})
        _view(seg_conn, absorbed, NOW - timedelta(days=1))
        seg = service.create(
            seg_conn,
            name="viewers",
            description="",
            kind="dynamic",
            rule=VIEWED,
            actor="t",
            now=NOW,
        )
        assert _row(seg_conn, seg.id, absorbed) == (NOW, None)
        seg_conn.execute(
            "UPDATE crm_profiles SET merged_into = %s WHERE id = %s", (survivor, absorbed)
        )
        handlers.process_all(seg_conn, now=NOW + timedelta(hours=1))
        assert _row(seg_conn, seg.id, absorbed) == (NOW, NOW + timedelta(hours=1))
        assert _row(seg_conn, seg.id, survivor) == (NOW + timedelta(hours=1), None)


def test_static_import_resolves_merged_ids_and_reports_unknown(seg_conn: Conn) -> None:
    with seg_conn.transaction(force_rollback=True):
        a, b = _profile(seg_conn, {}), _profile(seg_conn, {})
        seg_conn.execute("UPDATE crm_profiles SET merged_into = %s WHERE id = %s", (a, b))
        seg = service.create(
            seg_conn, name="vip list", description="", kind="static", rule=None, actor="t", now=NOW
        )
        out = service.import_members(seg_conn, seg.id, profile_ids=[a, b, 10**15], now=NOW)
        assert (out.added, out.already_members, out.unknown) == (1, 0, [10**15])
        again = service.import_members(seg_conn, seg.id, profile_ids=[a], now=NOW)
        assert (again.added, again.already_members) == (0, 1)
        assert _row(seg_conn, seg.id, a) == (NOW, None)


def test_a_score_change_reaches_segments_at_the_sweep(seg_conn: Conn) -> None:
    rule = r.PredictionRule(type="prediction", field="churn_probability", op="gte", value=0.8)
    with seg_conn.transaction(force_rollback=True):
        pid = _profile(seg_conn, {})
        seg = service.create(
            seg_conn, name="at risk", description="", kind="dynamic", rule=rule, actor="t", now=NOW
        )
        handlers.process_all(seg_conn, now=NOW)
        seg_conn.execute(
            "INSERT INTO ml_customer_scores (customer_id, segment, churn_probability, engagement,"
            " health_score, risk_value, model_version, as_of)"
            " VALUES (%s, 'x', 0.9, 0, 0, 0, 1, %s)",
            (str(pid), NOW),
        )
        handlers.process_all(seg_conn, now=NOW)
        assert _row(seg_conn, seg.id, pid) is None  # scores are rewritten in bulk: the sweep's
        service.sweep(seg_conn, now=NOW + timedelta(hours=1))
        assert _row(seg_conn, seg.id, pid) == (NOW + timedelta(hours=1), None)


def test_only_segments_whose_rule_reads_the_change_are_evaluated(seg_conn: Conn) -> None:
    with seg_conn.transaction(force_rollback=True):
        handlers.process_all(seg_conn, now=NOW)
        pid = _profile(seg_conn, {})
        viewers = service.create(
            seg_conn, name="v", description="", kind="dynamic", rule=VIEWED, actor="t", now=NOW
        )
        germans = service.create(
            seg_conn, name="de", description="", kind="dynamic", rule=DE, actor="t", now=NOW
        )
        handlers.process_all(seg_conn, now=NOW)
        # a view is read only by `viewers`; a country change only by `germans`
        _view(seg_conn, pid, NOW)
        seg_conn.execute(
            "UPDATE crm_profiles SET attributes = %s WHERE id = %s", (Jsonb({"country": "DE"}), pid)
        )
        batch = handlers.process_all(seg_conn, now=NOW)[0]
        assert (batch.entered, batch.exited) == (2, 0)
        assert _row(seg_conn, viewers.id, pid) == (NOW, None)
        assert _row(seg_conn, germans.id, pid) == (NOW, None)
