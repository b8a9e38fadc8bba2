"""Triggers: the event stream and domain events read by id watermark, and the periodic ones
(schedule, date property, churn risk).

One batch is one transaction: new crm_events rows (never past an id an open transaction may
still commit, see cloud.core.domain_events.committed_after) and new domain events
(segment.entered / segment.exited / score.threshold_crossed) enrol customers in the active
workflows they trigger and wake executions waiting for those events (or whose goal they are);
the watermarks are saved in the same transaction, and enrolment is idempotent (one live
execution per customer and workflow, the re-entry policy), so a replay after a crash is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from croniter import croniter
from pydantic import JsonValue

from cloud.core.domain_events import committed_after, load_cursor, read_after, save_cursor
from cloud.crm.automation import repository as repo
from cloud.crm.automation.definition import (
    ChurnTrigger,
    DateTrigger,
    Definition,
    EventTrigger,
    ScheduleTrigger,
    ScoreTrigger,
    SegmentTrigger,
)
from cloud.crm.automation.enrolment import definition_of, enrol

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
CONSUMER = "automation"
TOPICS = ("segment.entered", "segment.exited", "score.threshold_crossed")


@dataclass(frozen=True)
class EventRow:
    """A crm_events row as triggers read it."""

    id: int
    profile_id: int | None
    event: str | None
    properties: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class Batch:
    """What one batch did."""

    read: int
    enrolled: list[int]
    woken: int
    busy: bool = False


def _events(conn: Conn, after: int, limit: int) -> list[EventRow]:
    rows = conn.execute(
        "SELECT id, profile_id, event, properties, occurred_at FROM crm_events"
        " WHERE id > %s ORDER BY id LIMIT %s",
        (after, limit),
    ).fetchall()
    return [EventRow(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


def _live_workflows(conn: Conn) -> list[tuple[int, Definition]]:
    return [(wid, definition_of(conn, wid, v)) for wid, v, _, _ in repo.active_workflows(conn)]


def _matches(t: EventTrigger, e: EventRow) -> bool:
    return t.event == e.event and all(e.properties.get(f.property) == f.equals for f in t.filters)


def _domain_matches(d: Definition, topic: str, payload: dict[str, JsonValue]) -> bool:
    t = d.trigger
    if isinstance(t, SegmentTrigger):
        return topic == f"segment.{t.on}" and payload.get("segment_id") == t.segment_id
    if isinstance(t, ScoreTrigger):
        th = payload.get("threshold")
        return (
            topic == "score.threshold_crossed"
            and payload.get("programme") == t.programme
            and isinstance(th, int | float)
            and float(th) == t.threshold
            and payload.get("direction") == t.direction
        )
    return False


def process_batch(conn: Conn, *, now: datetime, limit: int = 2000) -> Batch:
    """One transaction: read new events and domain events, enrol, wake; save watermarks."""
    with conn.transaction():
        got = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"consumer:{CONSUMER}",)
        ).fetchone()
        if not got or not got[0]:
            return Batch(0, [], 0, busy=True)
        flows = _live_workflows(conn)
        name = f"{CONSUMER}:crm_events"
        after = load_cursor(conn, name)
        rows, held = committed_after(
            conn, "crm_events", lambda a: _events(conn, a, limit), lambda r: r.id, after
        )
        if rows:
            save_cursor(conn, name, rows[-1].id)
        mark = load_cursor(conn, f"{CONSUMER}:domain")
        domain, new_mark = read_after(conn, watermark=mark, topics=TOPICS, limit=limit)
        if new_mark != mark:
            save_cursor(conn, f"{CONSUMER}:domain", new_mark)
        enrolled: list[int] = []
        wanted = {e.profile_id for e in rows if e.profile_id is not None}
        wanted |= {p for ev in domain if isinstance(p := ev.payload.get("profile_id"), int)}
        known = {
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM crm_profiles WHERE id = ANY(%s)", (sorted(wanted),)
            ).fetchall()
        }
        for e in rows:
            if e.profile_id not in known or e.event is None:
                continue
            for wid, d in flows:
                if isinstance(d.trigger, EventTrigger) and _matches(d.trigger, e):
                    trig: dict[str, JsonValue] = {
                        "kind": "event",
                        "event": e.event,
                        "event_id": e.id,
                    }
                    _enrol(conn, wid, e.profile_id, now, trig, enrolled)
        for ev in domain:
            pid = ev.payload.get("profile_id")
            if not isinstance(pid, int) or pid not in known:
                continue
            for wid, d in flows:
                if _domain_matches(d, ev.topic, ev.payload):
                    trig = {"kind": ev.topic, "domain_event_id": ev.id}
                    _enrol(conn, wid, pid, now, trig, enrolled)
        by_profile = sorted({e.profile_id for e in rows if e.profile_id is not None})
        names = sorted({e.event for e in rows if e.event is not None})
        woken = repo.wake_waiting(conn, by_profile, names, now) if by_profile else 0
    return Batch(len(rows) + len(domain), enrolled, woken, busy=held)


def _enrol(
    conn: Conn, wid: int, pid: int, now: datetime, trig: dict[str, JsonValue], out: list[int]
) -> None:
    # The profile exists (checked for the batch; profiles are merged, never deleted).
    eid = enrol(conn, workflow_id=wid, profile_id=pid, now=now, trigger=trig)
    if eid is not None:
        out.append(eid)


def process_all(
    conn: Conn, *, now: datetime, limit: int = 2000, max_batches: int = 100
) -> list[Batch]:
    """Batches until drained (or busy, or `max_batches`)."""
    out = []
    for _ in range(max_batches):
        res = process_batch(conn, now=now, limit=limit)
        out.append(res)
        if res.busy or res.read == 0:
            break
    return out


# --- periodic triggers ------------------------------------------------------------------------


def _audience(conn: Conn, segment_id: int | None, limit: int) -> list[int]:
    if segment_id is None:
        q = "SELECT id FROM crm_profiles WHERE merged_into IS NULL ORDER BY id LIMIT %s"
        return [int(r[0]) for r in conn.execute(q, (limit,)).fetchall()]
    rows = conn.execute(
        "SELECT profile_id FROM crm_segment_members WHERE segment_id = %s AND exited_at IS NULL"
        " ORDER BY profile_id LIMIT %s",
        (segment_id, limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


def _dated(conn: Conn, t: DateTrigger, today: date, limit: int) -> list[int]:
    target = today - timedelta(days=t.offset_days)
    pattern = target.strftime("%m-%d") if t.annual else target.isoformat()
    rows = conn.execute(
        "SELECT id FROM crm_profiles WHERE merged_into IS NULL AND attributes ? %(k)s"
        " AND CASE WHEN %(annual)s THEN substr(attributes->>%(k)s, 6, 5)"
        " ELSE substr(attributes->>%(k)s, 1, 10) END = %(p)s ORDER BY id LIMIT %(n)s",
        {"k": t.attribute, "annual": t.annual, "p": pattern, "n": limit},
    ).fetchall()
    return [int(r[0]) for r in rows]


def _churned(conn: Conn, t: ChurnTrigger, since: datetime | None, limit: int) -> list[int]:
    """Customers rescored since the last run whose churn probability is now above the value
    (the re-entry policy decides whether one already in or through the workflow enters again)."""
    rows = conn.execute(
        "SELECT p.id FROM ml_customer_scores s JOIN crm_profiles p ON p.id::text = s.customer_id"
        " WHERE s.churn_probability > %s AND p.merged_into IS NULL"
        " AND (%s::timestamptz IS NULL OR s.scored_at > %s) ORDER BY p.id LIMIT %s",
        (t.above, since, since, limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


def _fires(t: ScheduleTrigger | DateTrigger, last: datetime | None, now: datetime) -> bool:
    if isinstance(t, DateTrigger):
        return last is None or last.date() < now.date()
    tz = ZoneInfo(t.timezone)
    start = (last or now - timedelta(minutes=1)).astimezone(tz)
    nxt: datetime = croniter(t.cron, start).get_next(datetime)
    return nxt <= now


def run_periodic(conn: Conn, *, now: datetime, limit: int = 100_000) -> list[int]:
    """Fire schedule, date and churn triggers that are due; returns new execution ids."""
    enrolled: list[int] = []
    for wid, version, _, last in repo.active_workflows(conn):
        t = definition_of(conn, wid, version).trigger
        with conn.transaction():
            if isinstance(t, ChurnTrigger):
                mark = conn.execute("SELECT max(scored_at) FROM ml_customer_scores").fetchone()
                ids = _churned(conn, t, last, limit)
                if mark is not None and mark[0] is not None:
                    repo.set_fired(conn, wid, mark[0])
            elif isinstance(t, ScheduleTrigger | DateTrigger) and _fires(t, last, now):
                repo.set_fired(conn, wid, now)
                if isinstance(t, ScheduleTrigger):
                    ids = _audience(conn, t.segment_id, limit)
                else:
                    ids = _dated(conn, t, now.date(), limit)
            else:
                continue
            for pid in ids:
                eid = enrol(conn, workflow_id=wid, profile_id=pid, now=now,
                            trigger={"kind": t.kind})  # fmt: skip
                if eid is not None:
                    enrolled.append(eid)
    return enrolled
