"""The worked example of docs/segments.md, computed by hand there, checked here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic import TypeAdapter

from cloud.crm.segments import handlers, service
from cloud.crm.segments.rules import Rule

Conn = psycopg.Connection[Any]
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
RULE = TypeAdapter(Rule).validate_python(
    {
        "type": "and",
        "rules": [
            {"type": "attribute", "attribute": "country", "op": "eq", "value": "DE"},
            {"type": "event", "event": "buy", "min_count": 2, "within_days": 7},
            {"type": "consent", "channel": "email", "purpose": "marketing"},
        ],
    }
)


def _day(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def test_the_worked_example(seg_conn: Conn) -> None:
    c = seg_conn
    with c.transaction(force_rollback=True):
        handlers.process_all(c, now=NOW)
        ids = {}
        for n, attrs in [
            (1, {"country": "DE"}),
            (2, {"country": "DE"}),
            (3, {"country": "US"}),
            (4, {}),
        ]:
            row = c.execute(
                "INSERT INTO crm_profiles (attributes) VALUES (%s) RETURNING id", (Jsonb(attrs),)
            ).fetchone()
            assert row is not None
            ids[n] = int(row[0])
        c.execute("UPDATE crm_profiles SET merged_into = %s WHERE id = %s", (ids[1], ids[4]))
        for n, at in [
            (1, _day(12, 4)),
            (4, _day(12, 1)),
            (2, _day(12, 3)),
            (2, _day(11, 20)),
            (3, _day(12, 4)),
            (3, _day(12, 5, 9)),
        ]:
            c.execute(
                "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type,"
                " event, profile_id) VALUES (%s, %s, 'doc', gen_random_uuid()::text, 'track',"
                " 'buy', %s)",
                (at, at, ids[n]),
            )
        for n, status, at in [
            (1, "denied", _day(11, 1)),
            (4, "granted", _day(11, 15)),
            (2, "granted", _day(12, 1)),
        ]:
            c.execute(
                "INSERT INTO crm_consents (profile_id, channel, purpose, status, source,"
                " updated_at) VALUES (%s, 'email', 'marketing', %s, 'doc', %s)",
                (ids[n], status, at),
            )
        seg = service.create(
            c,
            name="worked example",
            description="",
            kind="dynamic",
            rule=RULE,
            actor="doc",
            now=NOW,
        )
        assert seg.size == 1
        assert service.members(c, seg.id, after=0, limit=10) == [(ids[1], NOW)]
        # person 2 buys again: the incremental batch enters them
        later = NOW + timedelta(hours=1)
        c.execute(
            "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
            " profile_id) VALUES (%s, %s, 'doc', gen_random_uuid()::text, 'track', 'buy', %s)",
            (later, later, ids[2]),
        )
        handlers.process_all(c, now=later)
        assert [p for p, _ in service.members(c, seg.id, after=0, limit=10)] == [ids[1], ids[2]]
        # 12-08 13:00: person 1's 12-01 buy has left the window; the sweep exits them
        service.sweep(c, now=_day(12, 8, 13))
        assert [p for p, _ in service.members(c, seg.id, after=0, limit=10)] == [ids[2]]
        row = c.execute(
            "SELECT exited_at FROM crm_segment_members WHERE segment_id = %s AND profile_id = %s",
            (seg.id, ids[1]),
        ).fetchone()
        assert row == (_day(12, 8, 13),)
