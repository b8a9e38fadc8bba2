"""What a workflow reads about a customer: conditions, the goal, exit criteria. Read-only SQL;
`now` is passed in (the engine's clock), so a test can move time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from cloud.crm.automation.definition import (
    AttributeCondition,
    Condition,
    ConsentCondition,
    EventCondition,
    SegmentCondition,
)

Conn = psycopg.Connection[Any]


def attribute(conn: Conn, profile_id: int, key: str) -> Any:
    """A profile attribute's JSON value (None when absent)."""
    row = conn.execute(
        "SELECT attributes -> %s FROM crm_profiles WHERE id = %s", (key, profile_id)
    ).fetchone()
    return row[0] if row else None


def _norm(v: Any) -> tuple[str, Any]:
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, int | float):
        return ("n", float(v))
    return ("s", v)


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "exists":
        return have is not None
    if op in ("eq", "ne"):
        same = _norm(have) == _norm(want)
        return same if op == "eq" else not same
    h, w = _norm(have), _norm(want)
    if h[0] != "n" or w[0] != "n":
        return False
    a, b = h[1], w[1]
    return bool({"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op])


def event_count(conn: Conn, profile_id: int, event: str, since: datetime, until: datetime) -> int:
    """How many `event`s the customer did in [since, until]."""
    row = conn.execute(
        "SELECT count(*) FROM crm_events WHERE profile_id = %s AND event = %s"
        " AND occurred_at >= %s AND occurred_at <= %s",
        (profile_id, event, since, until),
    ).fetchone()
    return int(row[0]) if row else 0


def first_event(
    conn: Conn, profile_id: int, event: str, since: datetime, until: datetime
) -> datetime | None:
    """When the customer first did `event` in [since, until]."""
    row = conn.execute(
        "SELECT min(occurred_at) FROM crm_events WHERE profile_id = %s AND event = %s"
        " AND occurred_at >= %s AND occurred_at <= %s",
        (profile_id, event, since, until),
    ).fetchone()
    return row[0] if row else None


def is_member(conn: Conn, profile_id: int, segment_id: int) -> bool:
    """Whether the customer is a current member of the segment."""
    row = conn.execute(
        "SELECT 1 FROM crm_segment_members WHERE segment_id = %s AND profile_id = %s"
        " AND exited_at IS NULL",
        (segment_id, profile_id),
    ).fetchone()
    return row is not None


def consent_status(conn: Conn, profile_id: int, channel: str, purpose: str) -> str | None:
    """granted, denied, pending, or None when never recorded."""
    row = conn.execute(
        "SELECT status FROM crm_consents WHERE profile_id = %s AND channel = %s AND purpose = %s",
        (profile_id, channel, purpose),
    ).fetchone()
    return str(row[0]) if row else None


def holds(conn: Conn, c: Condition, profile_id: int, now: datetime) -> bool:
    """Whether a condition is true for the customer at `now`."""
    if isinstance(c, AttributeCondition):
        return _compare(c.op, attribute(conn, profile_id, c.attribute), c.value)
    if isinstance(c, EventCondition):
        since = now - timedelta(seconds=c.within_s)
        return event_count(conn, profile_id, c.event, since, now) >= c.count
    if isinstance(c, SegmentCondition):
        return is_member(conn, profile_id, c.segment_id) == c.member
    assert isinstance(c, ConsentCondition)
    return consent_status(conn, profile_id, c.channel, c.purpose) == "granted"


def explain(c: Condition) -> str:
    """A condition in words (for "why is this customer here")."""
    if isinstance(c, AttributeCondition):
        return f"attribute {c.attribute} {c.op} {c.value!r}"
    if isinstance(c, EventCondition):
        return f"did {c.event} at least {c.count}x within {c.within_s}s"
    if isinstance(c, SegmentCondition):
        return f"{'in' if c.member else 'not in'} segment {c.segment_id}"
    return f"consent {c.channel}/{c.purpose} granted"
