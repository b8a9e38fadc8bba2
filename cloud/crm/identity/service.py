"""Identity service: store a source record, re-resolve its neighbourhood, merge and split
(unmerge is in cloud.crm.identity.unmerge)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.crm import lifecycle
from cloud.crm.errors import CrmConflictError, CrmInvalidInputError
from cloud.crm.identity.normalize import normalize_identifier
from cloud.crm.identity.reconcile import GroupPlan, plan_profiles
from cloud.crm.identity.resolver import resolve
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.identity.survivorship import golden_attributes, validate_attributes
from cloud.db.repositories import crm_identity as repo

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
Key = tuple[str, str]
IdentifierInput = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True)
class ResolvedRecord:
    """Where a stored record landed."""

    record_id: int
    profile_id: int
    created_profile: bool
    merged_profiles: list[int] = field(default_factory=list)


def normalize_identifiers(
    identifiers: IdentifierInput, rules: IdentityRules
) -> list[tuple[str, str, str]]:
    """(kind, normalised value, raw value) triples; CrmInvalidInputError lists every bad one."""
    pairs = list(identifiers.items()) if isinstance(identifiers, Mapping) else list(identifiers)
    out: list[tuple[str, str, str]] = []
    errors: list[dict[str, Any]] = []
    for kind, raw in pairs:
        try:
            value = normalize_identifier(kind, raw, default_region=rules.default_phone_region)
        except CrmInvalidInputError as exc:
            errors.append({"field": f"identifiers.{kind}", "message": exc.detail})
            continue
        if (kind, value) not in {(k, v) for k, v, _ in out}:
            out.append((kind, value, raw))
    if errors:
        raise CrmInvalidInputError("; ".join(e["message"] for e in errors), errors=errors)
    if not out:
        raise CrmInvalidInputError("at least one identifier is required")
    return out


def ingest_record(
    conn: Conn,
    *,
    source: str,
    identifiers: IdentifierInput,
    attributes: Mapping[str, Any] | None = None,
    source_key: str | None = None,
    observed_at: datetime | None = None,
    rules: IdentityRules | None = None,
) -> ResolvedRecord:
    """Store (or update, by source_key) a source record and resolve it into a profile."""
    rules = rules or IdentityRules()
    idents = normalize_identifiers(identifiers, rules)
    attrs = validate_attributes(attributes)
    when = observed_at or datetime.now(UTC)
    repo.lock_identity(conn)
    existing = repo.find_record(conn, source, source_key) if source_key else None
    if existing:
        return _update_existing(conn, existing, idents, attrs, when, rules)
    pending = PendingRecord(source, source_key, rules.trust(source), attrs, when, idents)
    profile_of, merged = resolve_region(
        conn, [(k, v) for k, v, _ in idents], rules=rules, pending=[pending]
    )
    assert pending.record_id is not None
    return ResolvedRecord(
        pending.record_id, profile_of[pending.record_id], pending.created_profile, merged
    )


def ingest_event_record(
    conn: Conn,
    *,
    source: str,
    identifiers: IdentifierInput,
    attributes: Mapping[str, Any] | None,
    observed_at: datetime,
    rules: IdentityRules | None,
) -> ResolvedRecord:
    """The record behind an event (purchase, touchpoint): one per source and identifier set, so
    a repeat customer reuses it."""
    ids = list(identifiers.items()) if isinstance(identifiers, Mapping) else list(identifiers)
    key = f"{source}:" + "|".join(sorted(f"{k}={v}" for k, v in ids))
    return ingest_record(
        conn,
        source=source,
        identifiers=ids,
        attributes=attributes,
        source_key=key[:500],
        observed_at=observed_at,
        rules=rules,
    )


def _update_existing(
    conn: Conn,
    existing: tuple[int, int],
    idents: list[tuple[str, str, str]],
    attrs: dict[str, str],
    when: datetime,
    rules: IdentityRules,
) -> ResolvedRecord:
    """A known record again: nothing to resolve when it brings no new identifier."""
    record_id, profile_id = existing
    known = set(repo.identifiers_of_records(conn, [record_id])[record_id])
    repo.update_record(conn, record_id, attrs, when)
    if {(k, v) for k, v, _ in idents} <= known:
        if attrs:
            refresh_profile(conn, profile_id, rules)
        return ResolvedRecord(record_id, profile_id, False, [])
    repo.add_identifiers(conn, record_id, idents)
    profile_of, merged = resolve_region(
        conn, [(k, v) for k, v, _ in idents], rules=rules, cause=[record_id]
    )
    return ResolvedRecord(record_id, profile_of[record_id], False, merged)


@dataclass
class PendingRecord:
    """A validated record resolved before it is stored (so it never needs a throw-away
    profile); identifiers are normalised (kind, value, raw) triples."""

    source: str
    source_key: str | None
    trust: int
    attributes: dict[str, str]
    observed_at: datetime
    identifiers: list[tuple[str, str, str]]
    record_id: int | None = None
    created_profile: bool = False

    def store(self, conn: Conn, profile_id: int) -> int:
        """Insert the record and its identifiers into `profile_id`."""
        self.record_id = repo.insert_record(
            conn,
            profile_id=profile_id,
            source=self.source,
            source_key=self.source_key,
            trust=self.trust,
            attributes=self.attributes,
            observed_at=self.observed_at,
        )
        repo.add_identifiers(conn, self.record_id, self.identifiers)
        return self.record_id


def resolve_region(
    conn: Conn,
    keys: Sequence[Key],
    *,
    rules: IdentityRules,
    pending: Sequence[PendingRecord] = (),
    cause: Sequence[int] = (),
) -> tuple[dict[int, int], list[int]]:
    """Re-resolve every record reachable from `keys` (plus records not stored yet) and apply
    merges and splits. Returns (record id -> profile id, absorbed profile ids). `cause`: stored
    records whose change prompted this (logged with a merge, with the pending records, as what
    bridged it). The caller holds the identity lock."""
    region = expand_region(conn, keys, rules.max_region_records)
    idents = repo.identifiers_of_records(conn, list(region), linking_only=True)
    current: dict[int, int | None] = dict(region)
    new = {-(i + 1): p for i, p in enumerate(pending)}  # pseudo ids below zero
    for pseudo, p in new.items():
        idents[pseudo] = [(k, v) for k, v, _ in p.identifiers]
        current[pseudo] = None
    all_keys = {k for ks in idents.values() for k in ks}
    groups = resolve(list(idents.items()), rules, repo.blocked_identifiers(conn, all_keys))
    profile_of: dict[int, int] = {}
    merged: list[int] = []
    for plan in plan_profiles(groups, current):
        pid = plan.profile_id if plan.profile_id is not None else repo.create_profile(conn)
        for r in [r for r in plan.record_ids if r < 0]:
            new[r].created_profile = plan.profile_id is None
        bridges = [r for r in plan.record_ids if r < 0 or r in cause]
        plan.record_ids = [new[r].store(conn, pid) if r < 0 else r for r in plan.record_ids]
        bridges = [int(new[r].record_id or 0) if r < 0 else r for r in bridges]  # now stored
        merged += _apply_plan(conn, plan, pid, reason=_reason(pending), bridges=bridges)
        profile_of.update(dict.fromkeys(plan.record_ids, pid))
    for pid in set(profile_of.values()):
        refresh_profile(conn, pid, rules)
        if merged:  # the survivor now holds more history: its stage may move on
            lifecycle.advance_profile(conn, profile_id=pid, store_id=None, when=datetime.now(UTC))
    return profile_of, merged


def ingest_many(
    conn: Conn, records: Sequence[PendingRecord], *, rules: IdentityRules
) -> list[ResolvedRecord]:
    """Store many validated records and resolve them together (bulk import): one resolution for
    the lot; records whose source_key exists are updated one by one."""
    repo.lock_identity(conn)
    out: dict[int, ResolvedRecord] = {}
    fresh: list[tuple[int, PendingRecord]] = []
    for i, rec in enumerate(records):
        found = repo.find_record(conn, rec.source, rec.source_key) if rec.source_key else None
        if found:
            out[i] = _update_existing(
                conn, found, rec.identifiers, rec.attributes, rec.observed_at, rules
            )
        else:
            fresh.append((i, rec))
    keys = sorted({(k, v) for _, rec in fresh for k, v, _ in rec.identifiers})
    profile_of, merged = resolve_region(conn, keys, rules=rules, pending=[r for _, r in fresh])
    for i, rec in fresh:
        assert rec.record_id is not None
        out[i] = ResolvedRecord(
            rec.record_id, profile_of[rec.record_id], rec.created_profile, merged
        )
    return [out[i] for i in range(len(records))]


def _reason(pending: Sequence[PendingRecord]) -> str:
    if not pending:
        return "re-resolution"
    if len(pending) > 1:
        return f"bulk {pending[0].source} of {len(pending)} records"
    return f"{pending[0].source} record {pending[0].source_key or ''}".strip()


def _apply_plan(
    conn: Conn, plan: GroupPlan, pid: int, *, reason: str, bridges: Sequence[int]
) -> list[int]:
    """Move records into `pid`, absorb emptied profiles; returns the absorbed ids."""
    if plan.profile_id is not None:
        repo.revive_profile(conn, pid)
    for old, moved in plan.moved_from.items():
        repo.move_records(conn, moved, pid)
        why = reason if old in plan.absorbed else f"split from profile {old}: {reason}"
        repo.log_merge(
            conn,
            survivor_id=pid,
            absorbed_id=old,
            record_ids=moved,
            reason=why,
            bridge_record_ids=bridges,
        )
        if old in plan.absorbed:
            repo.mark_merged(conn, old, pid)
            log.info("profiles merged", extra={"survivor": pid, "absorbed": old})
    return list(plan.absorbed)


def expand_region(conn: Conn, keys: Sequence[Key], cap: int) -> dict[int, int]:
    """Every stored record reachable from `keys` through shared identifiers (linking or not);
    CrmConflictError past `cap` records."""
    found: dict[int, int] = {}
    frontier: set[Key] = set(keys)
    seen_keys: set[Key] = set(keys)
    while frontier:
        linked = repo.records_with_identifiers(conn, frontier)
        new = {r: p for r, p in linked.items() if r not in found}
        if not new:
            break
        found.update(new)
        if len(found) > cap:
            raise CrmConflictError(
                f"identity neighbourhood exceeds {cap} records; an identifier is shared too "
                "widely (block it or mark its kind weak)"
            )
        more = {k for ks in repo.identifiers_of_records(conn, list(new)).values() for k in ks}
        frontier = more - seen_keys
        seen_keys |= more
    return found


def refresh_profile(conn: Conn, profile_id: int, rules: IdentityRules) -> None:
    """Recompute a profile's golden attributes and identified flag from its records."""
    records = repo.records_for_golden(conn, profile_id)
    strong = {k.value for k in rules.strong_kinds}
    idents = repo.identifiers_of_records(conn, [r["id"] for r in records])
    identified = any(k in strong for ks in idents.values() for k, _ in ks)
    repo.set_profile_state(
        conn,
        profile_id,
        attributes=golden_attributes(records, rules),
        identified=identified,
    )
