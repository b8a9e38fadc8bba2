"""Segments: definitions, preview, membership reconciliation, static imports, size history.

A service function takes a connection and owns the transaction. Membership of a dynamic
segment changes only through `reconcile`: it evaluates the rule (for everyone, or for the
persons a change touched), then enters the new matches and exits the members that no longer
match. Members who still match are not touched, so their `entered_at` survives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql
from pydantic import TypeAdapter

from cloud.core.errors import ConflictError, InvalidInputError, NotFoundError
from cloud.crm.segments import repository as repo
from cloud.crm.segments.compiler import compile_rule, count_query, members_query
from cloud.crm.segments.rules import EventRule, Rule, RuleError, check, walk

Conn = psycopg.Connection[Any]
RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


@dataclass(frozen=True)
class Reconciled:
    """What one reconciliation of one segment changed."""

    segment_id: int
    entered: int
    exited: int


@dataclass(frozen=True)
class Preview:
    """How many match a rule now, and a few of them."""

    size: int
    sample: list[int]


@dataclass(frozen=True)
class Imported:
    """What a static import did."""

    added: int
    already_members: int
    unknown: list[int]


def validate_rule(conn: Conn, rule: Rule) -> None:
    """InvalidInputError (a 422) naming the first unknown attribute, property or bad value."""
    try:
        events = [leaf.event for leaf, _ in walk(rule) if isinstance(leaf, EventRule)]
        check(rule, repo.plan_properties(conn, events) if events else None)
    except RuleError as exc:
        raise InvalidInputError(
            f"{exc.path}: {exc}",
            errors=[{"loc": ["body", *exc.path.split(".")], "msg": str(exc)}],
        ) from exc


def parse_rule(raw: dict[str, Any]) -> Rule:
    """A stored rule back as its model."""
    return RULE.validate_python(raw)


def matching(
    conn: Conn,
    rule: Rule,
    *,
    now: datetime,
    persons: list[int] | None = None,
    only_ids: list[int] | None = None,
) -> set[int]:
    """Live profile ids matching `rule` at `now` (only among `persons` when given, reading only
    the rows of `only_ids`: the persons' profile ids, looked up when not given)."""
    if persons is not None and only_ids is None:
        only_ids = repo.profile_ids_of(conn, persons)
    compiled = compile_rule(rule, now=now, only_ids=only_ids)
    return repo.matching(conn, members_query(compiled, persons=persons))


def reconcile(
    conn: Conn,
    segment_id: int,
    rule: Rule,
    *,
    now: datetime,
    persons: list[int] | None = None,
    only_ids: list[int] | None = None,
    reason: str = "rule",
) -> Reconciled:
    """Bring membership in line with the rule (for `persons` only when given), in the caller's
    transaction, under the segment's lock."""
    repo.lock_segment(conn, segment_id)
    match = matching(conn, rule, now=now, persons=persons, only_ids=only_ids)
    current = repo.current_members(conn, segment_id, persons)
    entered = repo.enter(conn, segment_id, sorted(match - current), at=now, reason=reason)
    exited = repo.exit_(conn, segment_id, sorted(current - match), at=now, reason=reason)
    return Reconciled(segment_id, entered, exited)


@dataclass(frozen=True)
class Target:
    """One segment to reconcile for some persons (incremental membership)."""

    segment_id: int
    rule: Rule
    persons: list[int]
    only_ids: list[int]


def reconcile_many(
    conn: Conn, targets: list[Target], *, now: datetime, reason: str
) -> list[Reconciled]:
    """`reconcile` for several segments, each under its lock, with the reads of all of them in
    one pipeline and the writes in another (two round trips instead of four per segment: at
    50 live segments the round trips were most of an incremental batch)."""
    with conn.pipeline():
        sent = []
        for t in targets:
            repo.lock_segment(conn, t.segment_id)
            compiled = compile_rule(t.rule, now=now, only_ids=t.only_ids)
            sent.append((
                repo.matching_cursor(conn, members_query(compiled, persons=t.persons)),
                repo.current_members_cursor(conn, t.segment_id, t.persons),
            ))  # fmt: skip
    diffs = []
    for t, (match_cur, current_cur) in zip(targets, sent, strict=True):
        match, current = repo.ids_of(match_cur), repo.ids_of(current_cur)
        diffs.append((t.segment_id, sorted(match - current), sorted(current - match)))
    with conn.pipeline():
        writes = [
            (sid, repo.enter_cursor(conn, sid, entering, at=now, reason=reason),
             repo.exit_cursor(conn, sid, leaving, at=now, reason=reason))
            for sid, entering, leaving in diffs
        ]  # fmt: skip
    return [Reconciled(sid, repo.count_of(e), repo.count_of(x)) for sid, e, x in writes]


def preview(conn: Conn, *, rule: Rule, sample: int, now: datetime | None = None) -> Preview:
    """The size of a rule's audience and a sample of it, without saving anything."""
    validate_rule(conn, rule)
    compiled = compile_rule(rule, now=now or datetime.now(UTC))
    size = repo.count(conn, count_query(compiled))
    q = members_query(compiled)
    ordered = q.sql + sql.SQL(" ORDER BY p.id LIMIT {}").format(sql.Placeholder())
    rows = conn.execute(ordered, [*q.params, sample]).fetchall()
    return Preview(size, [int(r[0]) for r in rows])


def create(
    conn: Conn,
    *,
    name: str,
    description: str,
    kind: Literal["static", "dynamic"],
    rule: Rule | None,
    actor: str,
    now: datetime | None = None,
) -> repo.SegmentRow:
    """Save a segment; a dynamic one gets its members at once."""
    if (kind == "dynamic") != (rule is not None):
        msg = "a dynamic segment needs a rule" if rule is None else "a static segment has no rule"
        raise InvalidInputError(msg, errors=[{"loc": ["body", "rule"], "msg": msg}])
    with conn.transaction():
        if rule is not None:
            validate_rule(conn, rule)
        raw = rule.model_dump(mode="json") if rule is not None else None
        try:
            with conn.transaction():
                sid = repo.insert_segment(
                    conn, name=name, description=description, kind=kind, rule=raw, by=actor
                )
        except psycopg.errors.UniqueViolation as exc:
            raise ConflictError(f"a segment named {name!r} exists") from exc
        if rule is not None:
            reconcile(conn, sid, rule, now=now or datetime.now(UTC), reason="created")
        return _get(conn, sid)


def update(
    conn: Conn,
    segment_id: int,
    *,
    name: str | None,
    description: str | None,
    rule: Rule | None,
    now: datetime | None = None,
) -> repo.SegmentRow:
    """Change name, description or rule; a new rule re-evaluates everyone."""
    with conn.transaction():
        seg = _get(conn, segment_id, lock=True)
        if rule is not None and seg.kind != "dynamic":
            msg = "a static segment has no rule"
            raise InvalidInputError(msg, errors=[{"loc": ["body", "rule"], "msg": msg}])
        if rule is not None:
            validate_rule(conn, rule)
        raw = rule.model_dump(mode="json") if rule is not None else seg.rule
        new_name = name if name is not None else seg.name
        try:
            with conn.transaction():
                repo.update_segment(
                    conn,
                    segment_id,
                    name=new_name,
                    description=description if description is not None else seg.description,
                    rule=raw,
                )
        except psycopg.errors.UniqueViolation as exc:
            raise ConflictError(f"a segment named {new_name!r} exists") from exc
        if rule is not None:
            reconcile(conn, segment_id, rule, now=now or datetime.now(UTC), reason="rule_changed")
        return _get(conn, segment_id)


def archive(conn: Conn, segment_id: int) -> None:
    """Hide a segment; its membership rows and history stay."""
    with conn.transaction():
        _get(conn, segment_id, lock=True)
        repo.archive_segment(conn, segment_id)


def list_(conn: Conn, *, after: int, limit: int) -> list[repo.SegmentRow]:
    """Live segments by id, after `after`."""
    return repo.list_segments(conn, after=after, limit=limit)


def get(conn: Conn, segment_id: int) -> repo.SegmentRow:
    """One live segment (NotFoundError otherwise)."""
    return _get(conn, segment_id)


def _get(conn: Conn, segment_id: int, *, lock: bool = False) -> repo.SegmentRow:
    seg = repo.get_segment(conn, segment_id, lock=lock)
    if seg is None:
        raise NotFoundError(f"segment {segment_id} not found")
    return seg


def import_members(
    conn: Conn, segment_id: int, *, profile_ids: list[int], now: datetime | None = None
) -> Imported:
    """Add profiles to a static segment (merged ids count as the person they are now)."""
    with conn.transaction():
        seg = _get(conn, segment_id, lock=True)
        if seg.kind != "static":
            raise ConflictError(f"segment {segment_id} is dynamic: its rule decides who is in")
        live = repo.resolve_live(conn, profile_ids)
        unknown = sorted({i for i in profile_ids if i not in live})
        people = sorted(set(live.values()))
        repo.lock_segment(conn, segment_id)
        added = repo.enter(conn, segment_id, people, at=now or datetime.now(UTC), reason="import")
        return Imported(added, len(people) - added, unknown)


def members(conn: Conn, segment_id: int, *, after: int, limit: int) -> list[tuple[int, datetime]]:
    """Current members by profile id."""
    _get(conn, segment_id)
    return repo.members_page(conn, segment_id, after=after, limit=limit)


def size_history(conn: Conn, segment_id: int, *, days: int) -> list[tuple[date, int]]:
    """Daily sizes of the last `days` days."""
    _get(conn, segment_id)
    return repo.sizes(conn, segment_id, since=datetime.now(UTC).date() - timedelta(days=days))


def sweep(conn: Conn, *, now: datetime | None = None) -> list[Reconciled]:
    """Re-evaluate every dynamic segment for everyone (time windows lapse, scores change);
    one transaction per segment."""
    at = now or datetime.now(UTC)
    out = []
    for sid, raw in repo.dynamic_segments(conn):
        with conn.transaction():
            out.append(reconcile(conn, sid, parse_rule(raw), now=at, reason="sweep"))
    return out


def snapshot(conn: Conn, *, day: date | None = None) -> int:
    """Record every live segment's size for `day` (today by default)."""
    with conn.transaction():
        return repo.snapshot_sizes(conn, day or datetime.now(UTC).date())
