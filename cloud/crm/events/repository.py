"""SQL for behavioural events (crm_events), their sources, message ids, tracking plans,
violation counters and the anonymous_id -> profile map. Storage contract: docs/events.md."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]

EVENT_COLUMNS = (
    "occurred_at", "received_at", "source_id", "message_id", "type", "event", "profile_id",
    "anonymous_id", "user_id", "properties", "store_id", "revenue",
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One row of crm_events; `id` is None until the row is stored."""

    occurred_at: datetime
    received_at: datetime
    source_id: str
    message_id: str
    type: str
    event: str | None = None
    profile_id: int | None = None
    anonymous_id: str | None = None
    user_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    store_id: str | None = None
    revenue: Decimal | None = None
    id: int | None = None

    def copy_row(self) -> tuple[Any, ...]:
        """The row in EVENT_COLUMNS order, as COPY takes it."""
        return (
            self.occurred_at, self.received_at, self.source_id, self.message_id, self.type,
            self.event, self.profile_id, self.anonymous_id, self.user_id,
            Jsonb(self.properties), self.store_id, self.revenue,
        )  # fmt: skip


@dataclass(frozen=True)
class Source:
    """A write-key source (the key itself is never stored, only its hash)."""

    id: str
    name: str
    write_key_prefix: str
    plan_mode: str
    retention_days: int | None
    consent_required: bool
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class ViolationCount:
    """How often one kind of violation happened for one event of one source."""

    source_id: str
    event: str
    kind: str
    action: str
    count: int
    first_seen: datetime
    last_seen: datetime
    last_message_id: str | None
    last_detail: str


_SOURCE_COLS = (
    "id, name, write_key_prefix, plan_mode, retention_days, consent_required, created_at,"
    " revoked_at"
)


def copy_events(conn: Conn, events: Iterable[Event]) -> int:
    """Store events with COPY (the fast path of ingest and import); returns how many."""
    return copy_rows(conn, (ev.copy_row() for ev in events))


def copy_rows(conn: Conn, rows: Iterable[Sequence[Any]]) -> int:
    """Store rows in EVENT_COLUMNS order with COPY (properties as Jsonb); returns how many."""
    n = 0
    sql = f"COPY crm_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def claim_message_ids(
    conn: Conn, source_id: str, message_ids: Sequence[str], received_at: datetime
) -> set[str]:
    """Record message ids of a source; returns those that were new (the rest are retries)."""
    if not message_ids:
        return set()
    rows = conn.execute(
        "INSERT INTO crm_event_message_ids (source_id, message_id, received_at)"
        " SELECT %s, m, %s FROM unnest(%s::text[]) AS m"
        " ON CONFLICT DO NOTHING RETURNING message_id",
        (source_id, received_at, list(message_ids)),
    ).fetchall()
    return {r[0] for r in rows}


def events_of(conn: Conn, *, source_id: str, limit: int = 1000) -> list[Event]:
    """The latest events of a source, newest first."""
    with conn.cursor(row_factory=class_row(Event)) as cur:
        return cur.execute(
            f"SELECT id, {', '.join(EVENT_COLUMNS)} FROM crm_events WHERE source_id = %s"
            " ORDER BY occurred_at DESC, id DESC LIMIT %s",
            (source_id, limit),
        ).fetchall()


# --- sources -------------------------------------------------------------------------------


def insert_source(
    conn: Conn,
    *,
    source_id: str,
    name: str,
    key_hash: str,
    key_prefix: str,
    plan_mode: str,
    retention_days: int | None,
    consent_required: bool,
) -> Source | None:
    """Create a source; None when the id is taken."""
    with conn.cursor(row_factory=class_row(Source)) as cur:
        return cur.execute(
            "INSERT INTO crm_event_sources (id, name, write_key_hash, write_key_prefix, plan_mode,"
            " retention_days, consent_required) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            f" ON CONFLICT (id) DO NOTHING RETURNING {_SOURCE_COLS}",
            (source_id, name, key_hash, key_prefix, plan_mode, retention_days, consent_required),
        ).fetchone()


def source_by_key_hash(conn: Conn, key_hash: str) -> Source | None:
    """The live (not revoked) source whose write key has this hash."""
    with conn.cursor(row_factory=class_row(Source)) as cur:
        return cur.execute(
            f"SELECT {_SOURCE_COLS} FROM crm_event_sources"
            " WHERE write_key_hash = %s AND revoked_at IS NULL",
            (key_hash,),
        ).fetchone()


def get_source(conn: Conn, source_id: str) -> Source | None:
    """A source by id."""
    with conn.cursor(row_factory=class_row(Source)) as cur:
        return cur.execute(
            f"SELECT {_SOURCE_COLS} FROM crm_event_sources WHERE id = %s", (source_id,)
        ).fetchone()


def list_sources(conn: Conn) -> list[Source]:
    """Every source, by id."""
    with conn.cursor(row_factory=class_row(Source)) as cur:
        return cur.execute(f"SELECT {_SOURCE_COLS} FROM crm_event_sources ORDER BY id").fetchall()


def update_source(
    conn: Conn, source_id: str, *, plan_mode: str | None, retention_days: int | None, clear: bool
) -> Source | None:
    """Change a source's plan mode and/or retention (`clear` removes the retention)."""
    with conn.cursor(row_factory=class_row(Source)) as cur:
        return cur.execute(
            "UPDATE crm_event_sources SET plan_mode = coalesce(%s, plan_mode),"
            " retention_days = CASE WHEN %s THEN NULL ELSE coalesce(%s, retention_days) END"
            f" WHERE id = %s RETURNING {_SOURCE_COLS}",
            (plan_mode, clear, retention_days, source_id),
        ).fetchone()


# --- tracking plan and violations ---------------------------------------------------------


def plan_of(conn: Conn, source_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(type, event) -> JSON schema of a source's tracking plan."""
    rows = conn.execute(
        "SELECT type, event, schema FROM crm_event_plans WHERE source_id = %s", (source_id,)
    ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def upsert_plan(conn: Conn, source_id: str, type_: str, event: str, schema: dict[str, Any]) -> None:
    """Set the schema of one event of a source's tracking plan."""
    conn.execute(
        "INSERT INTO crm_event_plans (source_id, type, event, schema) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (source_id, type, event) DO UPDATE SET schema = EXCLUDED.schema,"
        " updated_at = now()",
        (source_id, type_, event, Jsonb(schema)),
    )


def delete_plan(conn: Conn, source_id: str, type_: str, event: str) -> bool:
    """Remove one event's schema; False when there was none."""
    cur = conn.execute(
        "DELETE FROM crm_event_plans WHERE source_id = %s AND type = %s AND event = %s",
        (source_id, type_, event),
    )
    return cur.rowcount > 0


def count_violations(
    conn: Conn, source_id: str, rows: Sequence[tuple[str, str, str, str | None, str]], at: datetime
) -> None:
    """Add (event, kind, action, message id, detail) violations to the source's counters."""
    if not rows:
        return
    conn.execute(
        "INSERT INTO crm_event_violation_counts AS v (source_id, event, kind, action, count,"
        " first_seen, last_seen, last_message_id, last_detail)"
        " SELECT %s, e, k, a, count(*), %s, %s, max(m), max(d)"
        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
        " AS t(e, k, a, m, d)"
        " GROUP BY e, k, a"
        " ON CONFLICT (source_id, event, kind, action) DO UPDATE SET"
        " count = v.count + EXCLUDED.count, last_seen = EXCLUDED.last_seen,"
        " last_message_id = EXCLUDED.last_message_id, last_detail = EXCLUDED.last_detail",
        (source_id, at, at, *map(list, zip(*rows, strict=True))),
    )


def violations_of(conn: Conn, source_id: str) -> list[ViolationCount]:
    """A source's violation counters, most frequent first."""
    with conn.cursor(row_factory=class_row(ViolationCount)) as cur:
        return cur.execute(
            "SELECT source_id, event, kind, action, count, first_seen, last_seen,"
            " last_message_id, last_detail FROM crm_event_violation_counts"
            " WHERE source_id = %s ORDER BY count DESC, event, kind",
            (source_id,),
        ).fetchall()


# --- identities ---------------------------------------------------------------------------


def profiles_of_anonymous(conn: Conn, anonymous_ids: Sequence[str]) -> dict[str, int]:
    """anonymous_id -> profile id (as resolved today) for the ids already identified."""
    if not anonymous_ids:
        return {}
    rows = conn.execute(
        "SELECT anonymous_id, crm_resolve_profile(profile_id) FROM crm_event_identities"
        " WHERE anonymous_id = ANY(%s)",
        (list(set(anonymous_ids)),),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows if r[1] is not None}


def link_anonymous(
    conn: Conn, *, anonymous_id: str, profile_id: int, user_id: str | None, source_id: str,
    at: datetime,
) -> None:  # fmt: skip
    """Tie an anonymous_id to a profile (the latest identify wins)."""
    conn.execute(
        "INSERT INTO crm_event_identities (anonymous_id, profile_id, user_id, source_id,"
        " identified_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (anonymous_id) DO UPDATE SET"
        " profile_id = EXCLUDED.profile_id, user_id = coalesce(EXCLUDED.user_id,"
        " crm_event_identities.user_id), identified_at = EXCLUDED.identified_at",
        (anonymous_id, profile_id, user_id, source_id, at),
    )


def backfill_profile(conn: Conn, anonymous_id: str, profile_id: int) -> int:
    """Give the profile id to the stored events of an anonymous_id that had none."""
    cur = conn.execute(
        "UPDATE crm_events SET profile_id = %s WHERE anonymous_id = %s AND profile_id IS NULL",
        (profile_id, anonymous_id),
    )
    return cur.rowcount


# --- retention and partitions ---------------------------------------------------------------


def ensure_partitions(conn: Conn, *, months_back: int, months_ahead: int) -> int:
    """Create the monthly partitions around now (plain PostgreSQL; 0 on TimescaleDB)."""
    row = conn.execute(
        "SELECT crm_events_ensure_partitions(%s, %s)", (months_back, months_ahead)
    ).fetchone()
    return int(row[0]) if row else 0


def delete_older_than(conn: Conn, source_id: str, cutoff: datetime, *, limit: int) -> int:
    """Delete up to `limit` events of a source that occurred before `cutoff`."""
    cur = conn.execute(
        "DELETE FROM crm_events WHERE (id, occurred_at) IN (SELECT id, occurred_at"
        " FROM crm_events WHERE source_id = %s AND occurred_at < %s LIMIT %s)",
        (source_id, cutoff, limit),
    )
    return cur.rowcount


def delete_message_ids_before(conn: Conn, cutoff: datetime) -> int:
    """Forget the message ids received before `cutoff` (past the de-duplication window)."""
    cur = conn.execute("DELETE FROM crm_event_message_ids WHERE received_at < %s", (cutoff,))
    return cur.rowcount


def drop_partitions_before(conn: Conn, cutoff: datetime) -> int:
    """Drop whole partitions (chunks) that end before `cutoff`."""
    row = conn.execute("SELECT crm_events_drop_partitions_before(%s)", (cutoff,)).fetchone()
    return int(row[0]) if row else 0


def profiles_of_identifiers(conn: Conn, kind: str, values: Sequence[str]) -> dict[str, int]:
    """identifier value -> profile id (as resolved today) for identifiers of one kind."""
    if not values:
        return {}
    rows = conn.execute(
        "SELECT DISTINCT ON (i.value) i.value, crm_resolve_profile(r.profile_id)"
        " FROM crm_identifiers i JOIN crm_records r ON r.id = i.record_id"
        " WHERE i.kind = %s AND i.value = ANY(%s)"
        " ORDER BY i.value, i.unlinked_by_merge IS NOT NULL, r.profile_id",
        (kind, list(values)),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows if r[1] is not None}
