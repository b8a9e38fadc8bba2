"""The incremental scorer: new crm_events and crm_transactions rows, by id watermark.

One batch is one transaction: read the rows past the consumer's watermarks (never past an id an
open transaction may still commit: cloud.core.domain_events.committed_after), and for every
programme load the state of the profiles they touch (scores, today's rule counters, pending
snapshots, and the snapshots anyone has due) into the in-memory engine, apply the rows in id
order, write the states, scores, history, threshold transitions with their domain events, the
model (optimistic version) and the watermarks back. A crash or a version conflict rolls the
whole batch back; it is read again. Events without a profile yet (anonymous) are scored only by
the next full rescore, once identify has attached them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.core.domain_events import committed_after, load_cursor, save_cursor
from cloud.crm.scoring import repository as repo
from cloud.crm.scoring import service
from cloud.crm.scoring.engine import ScoringEngine
from cloud.crm.scoring.rules import ONCE_DAY, utc_day
from cloud.crm.scoring.scores import behaviour_score, combined_score, fit_score, next_level

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
CONSUMER = "scoring"


@dataclass(frozen=True)
class Batch:
    """What one batch did."""

    read: int
    profiles: int
    transitions: int
    learnt: int
    busy: bool = False


def _read(conn: Conn, table: str, fetch: Any, limit: int) -> tuple[list[Any], bool]:
    name = f"{CONSUMER}:{table}"
    after = load_cursor(conn, name)
    rows, held = committed_after(
        conn, table, lambda a: fetch(conn, after=a, limit=limit), lambda r: r.id, after
    )
    if rows:
        save_cursor(conn, name, rows[-1].id)
    return rows, held


def process_batch(conn: Conn, *, limit: int = 5000, now: datetime | None = None) -> Batch:
    """Score up to `limit` new rows per source in one transaction."""
    with conn.transaction():
        got = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"consumer:{CONSUMER}",)
        ).fetchone()
        if not got or not got[0]:
            return Batch(0, 0, 0, 0, busy=True)
        events, held1 = _read(conn, "crm_events", repo.read_events, limit)
        sales, held2 = _read(conn, "crm_transactions", repo.read_sales, limit)
        read = len(events) + len(sales)
        ids = {e.profile_id for e in events if e.profile_id is not None}
        ids |= {s.profile_id for s in sales if s.is_sale}
        if not ids:
            return Batch(read, 0, 0, 0, busy=held1 or held2)
        owner = repo.live_owner(conn, sorted(ids))
        moved = learnt = 0
        at = now or datetime.now(UTC)
        for prog in repo.list_programmes(conn):
            m, lt = _programme(conn, prog, events, sales, owner, at)
            moved, learnt = moved + m, learnt + lt
    if moved or learnt:
        log.info(
            "scores updated",
            extra={"read": read, "profiles": len(ids), "transitions": moved, "learnt": learnt},
        )
    return Batch(read, len(set(owner.values())), moved, learnt, busy=held1 or held2)


def _programme(
    conn: Conn,
    prog: repo.ProgrammeRow,
    events: list[repo.EventRow],
    sales: list[repo.SaleRow],
    owner: dict[int, int],
    at: datetime,
) -> tuple[int, int]:
    config = service.parse_config(prog.config)
    model, version = service.load_model(conn, prog.id)
    every = config.predictive.snapshot_every_days * 86400.0
    latest_t = max([e.occurred_at.timestamp() for e in events] + [model.clock])
    idle = repo.idle_due(
        conn, prog.id, repo.ts(latest_t - every), config.predictive.max_idle_snapshots, 5000
    )
    pids = sorted(set(owner.values()) | set(idle))
    stored = repo.scores_of(conn, prog.id, pids)
    days = sorted({utc_day(e.occurred_at.timestamp()) for e in events} | {ONCE_DAY})
    horizon = config.predictive.horizon_days * 86400.0
    latest = latest_t
    engine = ScoringEngine(
        config,
        model,
        states={p: repo.to_state(r) for p, r in stored.items()},
        counts=repo.counts_of(conn, prog.id, pids, [repo.day_of(d) for d in days]),
        pending=repo.pending_of(conn, prog.id, pids, repo.ts(latest - horizon)),
        fits={p: fit_score(config, a) for p, a in repo.attributes_of(conn, pids).items()},
    )
    pending_before = set(engine.pending)
    before_counts = {p: dict(c) for p, c in engine.counts.items()}
    touched: set[int] = set()
    # Sales and events interleave in time order within the batch (the model's clock is the
    # latest time seen; a sale at t labels the snapshots before t).
    rows: list[tuple[float, int, Any]] = [(e.occurred_at.timestamp(), 0, e) for e in events]
    rows += [(s.occurred_at.timestamp(), 1, s) for s in sales if s.is_sale]
    for t, kind, r in sorted(rows, key=lambda x: (x[0], x[1], x[2].id)):
        pid = owner.get(r.profile_id) if r.profile_id is not None else None
        if pid is None:
            continue
        touched.add(pid)
        if kind == 0:
            engine.apply_event(pid, r.event, r.properties or {}, t)
        elif config.predictive.purchases_convert:
            engine.apply_conversion(pid, t)
    idle_taken = {p for p in idle if engine.states[p].snapshot_at != _snap(stored.get(p))}
    moved = _write(conn, prog, engine, stored, touched, at)
    for p in sorted(idle_taken - touched):  # state only: scores move with events and sweeps
        row = stored[p]
        repo.upsert_score(
            conn, prog.id, engine.states[p],
            scores=(row.behaviour, row.fit, row.predictive, row.combined), level=row.level,
        )  # fmt: skip
    changed = [
        (pid, key, day, pts)
        for pid in touched
        for (key, day), pts in engine.counts.get(pid, {}).items()
        if before_counts.get(pid, {}).get((key, day)) != pts
    ]
    repo.save_counts(conn, prog.id, changed)
    repo.replace_pending(conn, prog.id, pending_before | set(engine.pending), engine.pending)
    learnt = model.samples_seen - (0 if version is None else _seen_before(conn, prog.id))
    service.save_model(conn, prog.id, model, version)
    return moved, max(0, learnt)


def _snap(row: repo.ScoreRow | None) -> float | None:
    return row.snapshot_at.timestamp() if row is not None and row.snapshot_at else None


def _seen_before(conn: Conn, programme: int) -> int:
    row = conn.execute(
        "SELECT samples_seen FROM ml_models WHERE name = %s", (service.model_name(programme),)
    ).fetchone()
    return int(row[0]) if row else 0


def _write(
    conn: Conn,
    prog: repo.ProgrammeRow,
    engine: ScoringEngine,
    stored: dict[int, repo.ScoreRow],
    touched: set[int],
    at: datetime,
) -> int:
    config = engine.config
    moved = 0
    for pid in sorted(touched):
        st = engine.states[pid]
        s = engine.score(pid, st.at)
        old = stored[pid].level if pid in stored else "none"
        level = next_level(old, s.combined, config.thresholds)
        scores = (s.behaviour, s.fit, s.predictive, s.combined)
        repo.upsert_score(conn, prog.id, st, scores=scores, level=level)
        if pid not in stored or abs(stored[pid].combined - s.combined) >= 0.01:
            repo.add_history(conn, prog.id, pid, scores, "events", at)
        moved += service.record_crossings(
            conn, prog.id, prog.name, pid, old, level, s.combined, reason="events", at=at,
            config=config,
        )  # fmt: skip
    return moved


def process_all(
    conn: Conn, *, limit: int = 5000, max_batches: int = 1000, now: datetime | None = None
) -> list[Batch]:
    """Batches until the sources are drained (or busy, or `max_batches`)."""
    out = []
    for _ in range(max_batches):
        res = process_batch(conn, limit=limit, now=now)
        out.append(res)
        if res.busy or res.read == 0:
            break
    return out


def sweep(conn: Conn, *, now: datetime | None = None) -> int:
    """Let decay move levels: rescore each programme whose config changed since its last full
    rescore; for the others, recompute levels of the stored scores decayed to now. Returns how
    many threshold transitions were logged."""
    at = now or datetime.now(UTC)
    moved = 0
    for prog in repo.list_programmes(conn):
        with conn.transaction():
            if prog.rescored_version < prog.version:
                moved += service.rescore(conn, prog.id, now=at, reason="rules changed").transitions
            else:
                moved += _decay_levels(conn, prog, at)
    return moved


def _decay_levels(conn: Conn, prog: repo.ProgrammeRow, at: datetime) -> int:
    config = service.parse_config(prog.config)
    rows = conn.execute(
        "SELECT profile_id, behaviour_raw, behaviour_at, fit, predictive, level FROM crm_scores"
        " WHERE programme_id = %s AND level <> 'none'",
        (prog.id,),
    ).fetchall()
    moved = 0
    for pid, raw, b_at, fit, pred, old in rows:
        decayed = raw * 2.0 ** (-max(0.0, (at - b_at).total_seconds()) / config.half_life_s)
        b = behaviour_score(decayed, config)
        c = combined_score(config, b, fit, pred)
        level = next_level(old, c, config.thresholds)
        if level != old:
            conn.execute(
                "UPDATE crm_scores SET level = %s, combined = %s, updated_at = now()"
                " WHERE programme_id = %s AND profile_id = %s",
                (level, c, prog.id, pid),
            )
            repo.add_history(conn, prog.id, pid, (b, fit, pred, c), "decay", at)
            moved += service.record_crossings(
                conn, prog.id, prog.name, pid, old, level, c, reason="decay", at=at, config=config
            )
    return moved
