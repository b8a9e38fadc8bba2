"""SQL of scoring: programmes, per-profile scores and their state, rule counters, pending
snapshots, history, threshold transitions, and the sources the consumer reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cloud.crm.scoring.engine import Snapshot
from cloud.crm.scoring.scores import ProfileState

Conn = psycopg.Connection[Any]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts(t: float) -> datetime:
    """POSIX seconds -> aware UTC datetime."""
    return EPOCH + timedelta(seconds=t)


def day_of(n: int) -> date:
    """Days since 1970-01-01 -> date."""
    return date(1970, 1, 1) + timedelta(days=n)


@dataclass(frozen=True)
class ProgrammeRow:
    """One stored programme."""

    id: int
    name: str
    config: dict[str, Any]
    version: int
    rescored_version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


_PCOLS = "id, name, config, version, rescored_version, created_by, created_at, updated_at"


def insert_programme(conn: Conn, *, name: str, config: dict[str, Any], by: str) -> int:
    """Store a programme (UniqueViolation on a duplicate name)."""
    row = conn.execute(
        "INSERT INTO crm_scoring_programmes (name, config, created_by) VALUES (%s, %s, %s)"
        " RETURNING id",
        (name, Jsonb(config), by),
    ).fetchone()
    assert row is not None
    return int(row[0])


def update_programme(conn: Conn, pid: int, config: dict[str, Any]) -> None:
    """Replace the config and bump the version (the stored scores now lag it)."""
    conn.execute(
        "UPDATE crm_scoring_programmes SET config = %s, version = version + 1,"
        " updated_at = now() WHERE id = %s",
        (Jsonb(config), pid),
    )


def mark_rescored(conn: Conn, pid: int, version: int) -> None:
    """Record which config version the scores were fully recomputed with."""
    conn.execute(
        "UPDATE crm_scoring_programmes SET rescored_version = greatest(rescored_version, %s)"
        " WHERE id = %s",
        (version, pid),
    )


def get_programme(conn: Conn, pid: int, *, lock: bool = False) -> ProgrammeRow | None:
    """A programme by id."""
    q = f"SELECT {_PCOLS} FROM crm_scoring_programmes WHERE id = %s"
    row = conn.execute(q + (" FOR UPDATE" if lock else ""), (pid,)).fetchone()
    return ProgrammeRow(*row) if row else None


def programme_by_name(conn: Conn, name: str) -> ProgrammeRow | None:
    """A programme by name."""
    row = conn.execute(
        f"SELECT {_PCOLS} FROM crm_scoring_programmes WHERE name = %s", (name,)
    ).fetchone()
    return ProgrammeRow(*row) if row else None


def list_programmes(conn: Conn) -> list[ProgrammeRow]:
    """Every programme by id."""
    rows = conn.execute(f"SELECT {_PCOLS} FROM crm_scoring_programmes ORDER BY id").fetchall()
    return [ProgrammeRow(*r) for r in rows]


def delete_programme(conn: Conn, pid: int) -> bool:
    """Delete a programme and its scores; False when there was none."""
    cur = conn.execute("DELETE FROM crm_scoring_programmes WHERE id = %s", (pid,))
    return cur.rowcount > 0


@dataclass(frozen=True)
class ScoreRow:
    """A stored score with the state it came from."""

    profile_id: int
    behaviour_raw: float
    behaviour_at: datetime
    behaviour: float
    fit: float
    predictive: float | None
    combined: float
    level: str
    features: dict[str, Any]
    first_seen: datetime | None
    last_event_at: datetime | None
    snapshot_at: datetime | None
    converted_at: datetime | None
    updated_at: datetime


_SCOLS = (
    "profile_id, behaviour_raw, behaviour_at, behaviour, fit, predictive, combined, level,"
    " features, first_seen, last_event_at, snapshot_at, converted_at, updated_at"
)


def scores_of(conn: Conn, programme: int, pids: list[int]) -> dict[int, ScoreRow]:
    """The stored scores of these profiles."""
    rows = conn.execute(
        f"SELECT {_SCOLS} FROM crm_scores WHERE programme_id = %s AND profile_id = ANY(%s)",
        (programme, pids),
    ).fetchall()
    return {int(r[0]): ScoreRow(*r) for r in rows}


def to_state(row: ScoreRow) -> ProfileState:
    """A stored score row as the engine's state."""
    f = row.features

    def sec(d: datetime | None) -> float | None:
        return d.timestamp() if d is not None else None

    return ProfileState(
        profile_id=row.profile_id,
        at=row.behaviour_at.timestamp(),
        by_rule={str(k): float(v) for k, v in (f.get("by_rule") or {}).items()},
        ew7=float(f.get("ew7", 0.0)),
        ew30=float(f.get("ew30", 0.0)),
        events=int(f.get("events", 0)),
        first_seen=sec(row.first_seen),
        last_event=sec(row.last_event_at),
        converted_at=sec(row.converted_at),
        snapshot_at=sec(row.snapshot_at),
        idle=int(f.get("idle", 0)),
    )


def upsert_score(
    conn: Conn,
    programme: int,
    st: ProfileState,
    *,
    scores: tuple[float, float, float | None, float],
    level: str,
) -> None:
    """Write a profile's state and scores (behaviour, fit, predictive, combined)."""
    b, fit, p, c = scores
    features = {
        "by_rule": st.by_rule, "ew7": st.ew7, "ew30": st.ew30, "events": st.events,
        "idle": st.idle,
    }  # fmt: skip
    opt = [ts(x) if x is not None else None for x in (st.first_seen, st.last_event)]
    conn.execute(
        "INSERT INTO crm_scores AS t (programme_id, profile_id, behaviour_raw, behaviour_at,"
        " behaviour, fit, predictive, combined, level, features, first_seen, last_event_at,"
        " snapshot_at, converted_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s) ON CONFLICT (programme_id, profile_id) DO UPDATE SET"
        " behaviour_raw = EXCLUDED.behaviour_raw, behaviour_at = EXCLUDED.behaviour_at,"
        " behaviour = EXCLUDED.behaviour, fit = EXCLUDED.fit, predictive = EXCLUDED.predictive,"
        " combined = EXCLUDED.combined, level = EXCLUDED.level, features = EXCLUDED.features,"
        " first_seen = EXCLUDED.first_seen, last_event_at = EXCLUDED.last_event_at,"
        " snapshot_at = EXCLUDED.snapshot_at, converted_at = EXCLUDED.converted_at,"
        " updated_at = now()",
        (
            programme, st.profile_id, st.raw, ts(st.at), b, fit, p, c, level, Jsonb(features),
            opt[0], opt[1],
            ts(st.snapshot_at) if st.snapshot_at is not None else None,
            ts(st.converted_at) if st.converted_at is not None else None,
        ),
    )  # fmt: skip


def idle_due(conn: Conn, programme: int, before: datetime, max_idle: int, limit: int) -> list[int]:
    """Profiles whose next idle snapshot is due (last snapshot before `before`)."""
    rows = conn.execute(
        "SELECT profile_id FROM crm_scores WHERE programme_id = %s AND snapshot_at < %s"
        " AND coalesce((features ->> 'idle')::int, 0) < %s ORDER BY snapshot_at LIMIT %s",
        (programme, before, max_idle, limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


def counts_of(
    conn: Conn, programme: int, pids: list[int], days: list[date]
) -> dict[int, dict[tuple[str, int], float]]:
    """Rule counters of these profiles on these days: pid -> (rule, day number) -> points."""
    rows = conn.execute(
        "SELECT profile_id, rule_key, day - DATE '1970-01-01', points FROM crm_score_rule_counts"
        " WHERE programme_id = %s AND profile_id = ANY(%s) AND day = ANY(%s)",
        (programme, pids, days),
    ).fetchall()
    out: dict[int, dict[tuple[str, int], float]] = {}
    for pid, key, day, pts in rows:
        out.setdefault(int(pid), {})[(str(key), int(day))] = float(pts)
    return out


def save_counts(conn: Conn, programme: int, counts: Iterable[tuple[int, str, int, float]]) -> None:
    """Upsert counters (pid, rule, day number, points used)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm_score_rule_counts (programme_id, profile_id, rule_key, day, hits,"
            " points) VALUES (%s, %s, %s, %s, 1, %s) ON CONFLICT (programme_id, profile_id,"
            " rule_key, day) DO UPDATE SET points = EXCLUDED.points,"
            " hits = crm_score_rule_counts.hits + 1",
            [(programme, pid, key, day_of(day), pts) for pid, key, day, pts in counts],
        )


def pending_of(
    conn: Conn, programme: int, pids: list[int], due_before: datetime
) -> dict[int, list[Snapshot]]:
    """Pending snapshots of these profiles, and of anyone whose horizon ended (at < due_before)."""
    rows = conn.execute(
        "SELECT profile_id, at, x, p_raw, p_cal, behaviour, combined, seen, converted"
        " FROM crm_score_pending WHERE programme_id = %s AND (profile_id = ANY(%s) OR at < %s)"
        " ORDER BY profile_id, at",
        (programme, pids, due_before),
    ).fetchall()
    out: dict[int, list[Snapshot]] = {}
    for pid, at, x, pr, pc, b, c, seen, conv in rows:
        snap = Snapshot(int(pid), at.timestamp(), dict(x), pr, pc, b, c, int(seen), bool(conv))
        out.setdefault(int(pid), []).append(snap)
    return out


def replace_pending(
    conn: Conn, programme: int, pids: Iterable[int], snaps: dict[int, list[Snapshot]]
) -> None:
    """Replace the pending snapshots of `pids` by `snaps` (learnt ones are gone)."""
    ids = sorted(set(pids))
    conn.execute(
        "DELETE FROM crm_score_pending WHERE programme_id = %s AND profile_id = ANY(%s)",
        (programme, ids),
    )
    rows = [
        (programme, s.profile_id, ts(s.at), Jsonb(s.x), s.p_raw, s.p_cal, s.behaviour,
         s.combined, s.seen, s.converted)
        for pid in ids for s in snaps.get(pid, [])
    ]  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm_score_pending (programme_id, profile_id, at, x, p_raw, p_cal,"
            " behaviour, combined, seen, converted) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s) ON CONFLICT DO NOTHING",
            rows,
        )


def add_history(
    conn: Conn, programme: int, pid: int, scores: tuple[float, float, float | None, float],
    reason: str, at: datetime,
) -> None:  # fmt: skip
    """Append a history row (behaviour, fit, predictive, combined)."""
    b, fit, p, c = scores
    conn.execute(
        "INSERT INTO crm_score_history (programme_id, profile_id, combined, behaviour, fit,"
        " predictive, reason, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (programme, pid, c, b, fit, p, reason, at),
    )


def history(
    conn: Conn, programme: int, pid: int, *, limit: int = 100
) -> list[tuple[datetime, float, float, float, float | None, str]]:
    """(at, combined, behaviour, fit, predictive, reason), newest first."""
    rows = conn.execute(
        "SELECT at, combined, behaviour, fit, predictive, reason FROM crm_score_history"
        " WHERE programme_id = %s AND profile_id = %s ORDER BY id DESC LIMIT %s",
        (programme, pid, limit),
    ).fetchall()
    return [tuple(r) for r in rows]


def add_transition(
    conn: Conn, programme: int, pid: int, *, level: str, direction: str, score: float,
    threshold: float, reason: str, at: datetime,
) -> int:  # fmt: skip
    """Log a threshold crossing; returns its id."""
    row = conn.execute(
        "INSERT INTO crm_score_transitions (programme_id, profile_id, level, direction, score,"
        " threshold, reason, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (programme, pid, level, direction, score, threshold, reason, at),
    ).fetchone()
    assert row is not None
    return int(row[0])


def transitions(
    conn: Conn, programme: int, *, profile_id: int | None, after: int, limit: int
) -> list[tuple[Any, ...]]:
    """(id, profile_id, level, direction, score, threshold, reason, at) by id."""
    return conn.execute(
        "SELECT id, profile_id, level, direction, score, threshold, reason, at"
        " FROM crm_score_transitions WHERE programme_id = %s AND id > %s"
        " AND (%s::bigint IS NULL OR profile_id = %s) ORDER BY id LIMIT %s",
        (programme, after, profile_id, profile_id, limit),
    ).fetchall()


def attributes_of(conn: Conn, pids: list[int]) -> dict[int, dict[str, Any]]:
    """Profile attributes."""
    rows = conn.execute(
        "SELECT id, attributes FROM crm_profiles WHERE id = ANY(%s)", (pids,)
    ).fetchall()
    return {int(i): dict(a) for i, a in rows}


def live_owner(conn: Conn, pids: list[int]) -> dict[int, int]:
    """Profile id -> the live profile it is now (merges are one level deep)."""
    rows = conn.execute(
        "SELECT id, coalesce(merged_into, id) FROM crm_profiles WHERE id = ANY(%s)", (pids,)
    ).fetchall()
    return {int(a): int(b) for a, b in rows}


@dataclass(frozen=True)
class EventRow:
    """A crm_events row the consumer scores."""

    id: int
    profile_id: int | None
    event: str | None
    properties: dict[str, Any]
    occurred_at: datetime


def read_events(conn: Conn, *, after: int, limit: int) -> list[EventRow]:
    """crm_events rows past `after`, by id."""
    rows = conn.execute(
        "SELECT id, profile_id, event, properties, occurred_at FROM crm_events WHERE id > %s"
        " ORDER BY id LIMIT %s",
        (after, limit),
    ).fetchall()
    return [EventRow(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


@dataclass(frozen=True)
class SaleRow:
    """A crm_transactions row: a sale converts."""

    id: int
    profile_id: int
    occurred_at: datetime
    is_sale: bool


def read_sales(conn: Conn, *, after: int, limit: int) -> list[SaleRow]:
    """crm_transactions rows past `after`, by id."""
    rows = conn.execute(
        "SELECT id, profile_id, occurred_at, kind = 'sale' AND reversed_at IS NULL"
        " FROM crm_transactions WHERE id > %s ORDER BY id LIMIT %s",
        (after, limit),
    ).fetchall()
    return [SaleRow(int(r[0]), int(r[1]), r[2], bool(r[3])) for r in rows]


def profile_exists(conn: Conn, pid: int) -> bool:
    """Whether the profile id exists."""
    return conn.execute("SELECT 1 FROM crm_profiles WHERE id = %s", (pid,)).fetchone() is not None


def events_of(
    conn: Conn, pids: list[int], *, limit: int
) -> dict[int, list[tuple[int, float, str | None, dict[str, Any]]]]:
    """The events (id, time, name, properties) of these live profiles (and those merged into
    them), at most `limit` in all, oldest first: the dry run's input."""
    rows = conn.execute(
        "SELECT coalesce(p.merged_into, p.id), e.id, e.occurred_at, e.event, e.properties"
        " FROM crm_events e JOIN crm_profiles p ON p.id = e.profile_id"
        " WHERE coalesce(p.merged_into, p.id) = ANY(%s) ORDER BY e.occurred_at, e.id LIMIT %s",
        (pids, limit),
    ).fetchall()
    out: dict[int, list[tuple[int, float, str | None, dict[str, Any]]]] = {}
    for owner, eid, at, name, props in rows:
        out.setdefault(int(owner), []).append((int(eid), at.timestamp(), name, dict(props)))
    return out
