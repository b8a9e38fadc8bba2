"""SQL of segments: definitions, membership (enter / exit with their domain events), sizes,
and the change sources the incremental consumer reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from cloud.crm.segments.compiler import Compiled

Conn = psycopg.Connection[Any]

ENTERED = "segment.entered"
EXITED = "segment.exited"


@dataclass(frozen=True)
class SegmentRow:
    """One stored segment."""

    id: int
    name: str
    description: str
    kind: str
    rule: dict[str, Any] | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    size: int


_COLS = (
    "s.id, s.name, s.description, s.kind, s.rule, s.created_by, s.created_at, s.updated_at,"
    " (SELECT count(*) FROM crm_segment_members x WHERE x.segment_id = s.id"
    " AND x.exited_at IS NULL) AS size"
)


def insert_segment(
    conn: Conn, *, name: str, description: str, kind: str, rule: dict[str, Any] | None, by: str
) -> int:
    """Store a new segment; returns its id (UniqueViolation on a live duplicate name)."""
    row = conn.execute(
        "INSERT INTO crm_segments (name, description, kind, rule, created_by)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (name, description, kind, Jsonb(rule) if rule is not None else None, by),
    ).fetchone()
    assert row is not None
    return int(row[0])


def update_segment(
    conn: Conn, segment_id: int, *, name: str, description: str, rule: dict[str, Any] | None
) -> None:
    """Replace the editable fields."""
    conn.execute(
        "UPDATE crm_segments SET name = %s, description = %s, rule = %s, updated_at = now()"
        " WHERE id = %s",
        (name, description, Jsonb(rule) if rule is not None else None, segment_id),
    )


def archive_segment(conn: Conn, segment_id: int) -> None:
    """Hide a segment (members and history are kept)."""
    conn.execute(
        "UPDATE crm_segments SET archived_at = now(), updated_at = now() WHERE id = %s",
        (segment_id,),
    )


def get_segment(conn: Conn, segment_id: int, *, lock: bool = False) -> SegmentRow | None:
    """A live (not archived) segment, or None."""
    q = f"SELECT {_COLS} FROM crm_segments s WHERE s.id = %s AND s.archived_at IS NULL"
    if lock:
        q += " FOR UPDATE OF s"
    with conn.cursor(row_factory=class_row(SegmentRow)) as cur:
        return cur.execute(q, (segment_id,)).fetchone()


def list_segments(conn: Conn, *, after: int, limit: int) -> list[SegmentRow]:
    """Live segments by id."""
    with conn.cursor(row_factory=class_row(SegmentRow)) as cur:
        return cur.execute(
            f"SELECT {_COLS} FROM crm_segments s WHERE s.archived_at IS NULL AND s.id > %s"
            " ORDER BY s.id LIMIT %s",
            (after, limit),
        ).fetchall()


def dynamic_segments(conn: Conn) -> list[tuple[int, dict[str, Any]]]:
    """(id, rule) of every live dynamic segment."""
    rows = conn.execute(
        "SELECT id, rule FROM crm_segments WHERE kind = 'dynamic' AND archived_at IS NULL"
        " ORDER BY id"
    ).fetchall()
    return [(int(r[0]), r[1]) for r in rows]


def lock_segment(conn: Conn, segment_id: int) -> None:
    """Serialise membership writers of one segment until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('crm_segment'), %s::int)", (segment_id,))


def matching(conn: Conn, query: Compiled) -> set[int]:
    """The profile ids a members query returns."""
    return {int(r[0]) for r in conn.execute(sql.Composed([query.sql]), query.params)}


def count(conn: Conn, query: Compiled) -> int:
    """The number a count query returns."""
    row = conn.execute(sql.Composed([query.sql]), query.params).fetchone()
    return int(row[0]) if row else 0


def current_members(conn: Conn, segment_id: int, among: list[int] | None = None) -> set[int]:
    """Current members (only among `among` when given)."""
    return ids_of(current_members_cursor(conn, segment_id, among))


def matching_cursor(conn: Conn, query: Compiled) -> psycopg.Cursor[Any]:
    """The members query sent (in a pipeline its rows come when it syncs); see `ids_of`."""
    return conn.execute(sql.Composed([query.sql]), query.params)


def current_members_cursor(
    conn: Conn, segment_id: int, among: list[int] | None = None
) -> psycopg.Cursor[Any]:
    """The current-members query sent (only among `among` when given); see `ids_of`."""
    q = "SELECT profile_id FROM crm_segment_members WHERE segment_id = %s AND exited_at IS NULL"
    params: list[Any] = [segment_id]
    if among is not None:
        q += " AND profile_id = ANY(%s)"
        params.append(among)
    return conn.execute(q, params)


def ids_of(cur: psycopg.Cursor[Any]) -> set[int]:
    """The ids (first column) a cursor returned."""
    return {int(r[0]) for r in cur.fetchall()}


_EVENT = (
    "INSERT INTO domain_events (topic, subject, payload)"
    " SELECT %(topic)s, 'profile:' || c.profile_id, jsonb_build_object("
    " 'segment_id', %(s)s::bigint, 'profile_id', c.profile_id, 'at', %(at)s::timestamptz,"
    " 'reason', %(reason)s::text) FROM {src} c"
)


def enter(conn: Conn, segment_id: int, ids: list[int], *, at: datetime, reason: str) -> int:
    """Make `ids` current members: new rows, or returning members whose past stint moves to the
    history; emits segment.entered for each; returns how many entered."""
    return count_of(enter_cursor(conn, segment_id, ids, at=at, reason=reason))


def exit_(conn: Conn, segment_id: int, ids: list[int], *, at: datetime, reason: str) -> int:
    """End the current stint of `ids` (the row stays, with exited_at); emits segment.exited."""
    return count_of(exit_cursor(conn, segment_id, ids, at=at, reason=reason))


def count_of(cur: psycopg.Cursor[Any] | None) -> int:
    """The count an `enter_cursor` / `exit_cursor` statement returned (0 for none sent)."""
    row = cur.fetchone() if cur is not None else None
    return int(row[0]) if row else 0


def enter_cursor(
    conn: Conn, segment_id: int, ids: list[int], *, at: datetime, reason: str
) -> psycopg.Cursor[Any] | None:
    """`enter`'s statement sent (None when there is nobody); read it with `count_of`."""
    if not ids:
        return None
    return conn.execute(
        "WITH prev AS (SELECT segment_id, profile_id, entered_at, exited_at"
        "  FROM crm_segment_members WHERE segment_id = %(s)s AND profile_id = ANY(%(ids)s)"
        "  AND exited_at IS NOT NULL),"
        " hist AS (INSERT INTO crm_segment_member_history SELECT * FROM prev),"
        " up AS (INSERT INTO crm_segment_members (segment_id, profile_id, entered_at)"
        "  SELECT %(s)s, x, %(at)s FROM unnest(%(ids)s::bigint[]) x"
        "  ON CONFLICT (segment_id, profile_id) DO UPDATE"
        "  SET entered_at = EXCLUDED.entered_at, exited_at = NULL"
        "  WHERE crm_segment_members.exited_at IS NOT NULL RETURNING profile_id),"
        " ev AS (" + _EVENT.format(src="up") + ")"
        " SELECT count(*) FROM up",
        {"s": segment_id, "ids": ids, "at": at, "topic": ENTERED, "reason": reason},
    )


def exit_cursor(
    conn: Conn, segment_id: int, ids: list[int], *, at: datetime, reason: str
) -> psycopg.Cursor[Any] | None:
    """`exit_`'s statement sent (None when there is nobody); read it with `count_of`."""
    if not ids:
        return None
    return conn.execute(
        "WITH up AS (UPDATE crm_segment_members SET exited_at = %(at)s"
        "  WHERE segment_id = %(s)s AND profile_id = ANY(%(ids)s) AND exited_at IS NULL"
        "  RETURNING profile_id),"
        " ev AS (" + _EVENT.format(src="up") + ")"
        " SELECT count(*) FROM up",
        {"s": segment_id, "ids": ids, "at": at, "topic": EXITED, "reason": reason},
    )


def members_page(
    conn: Conn, segment_id: int, *, after: int, limit: int
) -> list[tuple[int, datetime]]:
    """(profile_id, entered_at) of current members by profile id."""
    rows = conn.execute(
        "SELECT profile_id, entered_at FROM crm_segment_members WHERE segment_id = %s"
        " AND exited_at IS NULL AND profile_id > %s ORDER BY profile_id LIMIT %s",
        (segment_id, after, limit),
    ).fetchall()
    return [(int(r[0]), r[1]) for r in rows]


def resolve_live(conn: Conn, ids: list[int]) -> dict[int, int]:
    """Requested profile id -> the live profile it is today (unknown ids are left out)."""
    rows = conn.execute(
        "SELECT x, crm_resolve_profile(x) FROM unnest(%s::bigint[]) x"
        " WHERE crm_resolve_profile(x) IS NOT NULL",
        (ids,),
    ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def profile_ids_of(conn: Conn, persons: list[int]) -> list[int]:
    """Every profile id of these persons: themselves and the profiles merged into them."""
    rows = conn.execute(
        "SELECT id FROM crm_profiles WHERE id = ANY(%s) OR merged_into = ANY(%s)",
        (persons, persons),
    ).fetchall()
    return [int(r[0]) for r in rows]


def snapshot_sizes(conn: Conn, day: date) -> int:
    """Record today's size of every live segment (a rerun the same day overwrites)."""
    cur = conn.execute(
        "INSERT INTO crm_segment_sizes (segment_id, day, size)"
        " SELECT s.id, %s, (SELECT count(*) FROM crm_segment_members m WHERE m.segment_id = s.id"
        " AND m.exited_at IS NULL) FROM crm_segments s WHERE s.archived_at IS NULL"
        " ON CONFLICT (segment_id, day) DO UPDATE SET size = EXCLUDED.size, taken_at = now()",
        (day,),
    )
    return cur.rowcount


def sizes(conn: Conn, segment_id: int, *, since: date) -> list[tuple[date, int]]:
    """(day, size) from `since`, oldest first."""
    rows = conn.execute(
        "SELECT day, size FROM crm_segment_sizes WHERE segment_id = %s AND day >= %s ORDER BY day",
        (segment_id, since),
    ).fetchall()
    return [(r[0], int(r[1])) for r in rows]


def plan_properties(conn: Conn, events: list[str]) -> dict[str, frozenset[str]]:
    """Event name -> the property names its tracking plans declare."""
    rows = conn.execute(
        "SELECT event, jsonb_object_keys(schema -> 'properties') FROM crm_event_plans"
        " WHERE event = ANY(%s) AND jsonb_typeof(schema -> 'properties') = 'object'",
        (events,),
    ).fetchall()
    out: dict[str, set[str]] = {}
    for event, prop in rows:
        out.setdefault(event, set()).add(prop)
    return {k: frozenset(v) for k, v in out.items()}


# The sources of incremental membership: SQL returning (id, profile_id, what) after an id.
SOURCES: dict[str, LiteralString] = {
    "crm_events": (
        "SELECT id, profile_id, event, store_id IS NOT NULL FROM crm_events"
        " WHERE id > %s ORDER BY id LIMIT %s"
    ),
    "crm_transactions": (
        "SELECT id, profile_id, NULL, true FROM crm_transactions WHERE id > %s ORDER BY id LIMIT %s"
    ),
    "crm_segment_changes": (
        "SELECT id, profile_id, source, NULL FROM crm_segment_changes"
        " WHERE id > %s ORDER BY id LIMIT %s"
    ),
}
#: The change topics (see rules.depends_on) of each change-log source; `*` is every segment.
_CHANGE_TOPICS: dict[str, frozenset[str]] = {
    "crm_profiles": frozenset({"profile"}),
    "crm_consents": frozenset({"consent"}),
    "loyalty_accounts": frozenset({"loyalty"}),
    "crm_transactions": frozenset({"purchase", "store"}),
}


@dataclass(frozen=True)
class Change:
    """A source row: its id, whose it is, and which rules it can affect."""

    id: int
    profile_id: int | None
    topics: frozenset[str]


def _topics(table: str, what: str | None, store: bool | None) -> frozenset[str]:
    if table == "crm_events":
        return frozenset({f"event:{what}", *(["store"] if store else [])})
    if table == "crm_transactions":
        return frozenset({"purchase", "store"})
    return _CHANGE_TOPICS.get(what or "", frozenset({"*"}))


def read_source(conn: Conn, table: str, *, after: int, limit: int) -> list[Change]:
    """The rows of a change source past `after`."""
    rows = conn.execute(SOURCES[table], (after, limit)).fetchall()
    return [Change(int(r[0]), r[1], _topics(table, r[2], r[3])) for r in rows]


def owners(conn: Conn, profile_ids: list[int]) -> dict[int, int]:
    """Profile id -> the live profile it is now (merges are one level deep)."""
    rows = conn.execute(
        "SELECT id, coalesce(merged_into, id) FROM crm_profiles WHERE id = ANY(%s)",
        (profile_ids,),
    ).fetchall()
    return {int(a): int(b) for a, b in rows}


def profiles_by_person(conn: Conn, persons: list[int]) -> dict[int, list[int]]:
    """Person -> its profile ids (itself and the profiles merged into it)."""
    rows = conn.execute(
        "SELECT coalesce(merged_into, id), id FROM crm_profiles"
        " WHERE id = ANY(%s) OR merged_into = ANY(%s)",
        (persons, persons),
    ).fetchall()
    out: dict[int, list[int]] = {}
    for owner, pid in rows:
        out.setdefault(int(owner), []).append(int(pid))
    return out
