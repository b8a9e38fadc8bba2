"""Event collection: one batch of Segment-spec calls from a source, checked (consent, clock,
tracking plan), de-duplicated by messageId, tied to profiles and stored with COPY in one
transaction the service owns."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic_core import to_json

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.events import clock, identify
from cloud.crm.events import repository as repo
from cloud.crm.events.plan import TrackingPlan
from cloud.crm.events.repository import Source
from cloud.crm.events.schemas import BatchResult, CallIn, RejectedCall
from cloud.crm.identity.rules import IdentityRules

Conn = psycopg.Connection[Any]
#: (event, kind, action, message id, detail): one counted violation.
Violation = tuple[str, str, str, str | None, str]


class EventsRejectedError(CrmInvalidInputError):
    """Calls of the request broke rules their source enforces; nothing was stored."""

    slug = "events-rejected"
    title = "Events rejected"


@dataclass
class PendingCall:
    """A call that passed the checks, on its way to a row."""

    index: int
    call: CallIn
    message_id: str
    occurred_at: datetime


@dataclass
class _Checked:
    pending: list[PendingCall] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    no_consent: list[RejectedCall] = field(default_factory=list)
    flagged: int = 0


def ingest(
    conn: Conn,
    *,
    source: Source,
    calls: Sequence[CallIn],
    received_at: datetime,
    sent_at: datetime | None = None,
    context: Mapping[str, Any] | None = None,
    rules: IdentityRules | None = None,
) -> BatchResult:
    """Store a batch of calls and commit; EventsRejectedError (counted, nothing stored) when a
    call breaks a rule the source enforces (a time out of range, the plan in reject mode)."""
    rules = rules or IdentityRules()
    plan = TrackingPlan(repo.plan_of(conn, source.id))
    checked = _check(source, calls, plan, received_at, sent_at, context or {})
    if checked.errors:
        conn.rollback()
        repo.count_violations(conn, source.id, checked.violations, received_at)
        conn.commit()
        raise EventsRejectedError(
            f"{len(checked.errors)} problem(s) in the calls; nothing was stored",
            errors=checked.errors,
        )
    accepted, violations = store(conn, source, checked.pending, received_at, rules)
    repo.count_violations(conn, source.id, checked.violations + violations, received_at)
    conn.commit()
    return BatchResult(
        accepted=accepted,
        duplicates=len(checked.pending) - accepted,
        flagged=checked.flagged,
        skipped_no_consent=checked.no_consent,
    )


def store(
    conn: Conn,
    source: Source,
    pending: Sequence[PendingCall],
    received_at: datetime,
    rules: IdentityRules,
) -> tuple[int, list[Violation]]:
    """Claim the message ids, run identify/alias calls, tie calls to known profiles and COPY
    the new ones (no commit); how many were new, and the traits that could not be used."""
    fresh = repo.claim_message_ids(conn, source.id, [p.message_id for p in pending], received_at)
    todo = [p for p in pending if p.message_id in fresh]
    violations = _identify_calls(conn, source, todo, rules)
    profiles = _profiles(conn, todo, rules)
    repo.copy_rows(conn, (_row(source.id, p, received_at, profiles) for p in todo))
    return len(todo), violations


def _check(
    source: Source,
    calls: Sequence[CallIn],
    plan: TrackingPlan,
    received_at: datetime,
    sent_at: datetime | None,
    context: Mapping[str, Any],
) -> _Checked:
    out = _Checked()
    seen: set[str] = set()
    reject = source.plan_mode == "reject"
    for i, call in enumerate(calls):
        mid = call.message_id or f"srv-{uuid.uuid4()}"
        if mid in seen:
            continue  # the same call twice in one batch: stored once
        seen.add(mid)
        name = _name(call)
        if source.consent_required and not has_consent(call.context or context):
            out.no_consent.append(RejectedCall(index=i, message_id=mid, reason="no consent"))
            out.violations.append((name, "consent_missing", "rejected", mid, "no consent"))
            continue
        when = clock.correct(call.timestamp, call.sent_at or sent_at, received_at)
        if when.out_of_range:
            out.errors.append({"field": f"batch[{i}].timestamp", "message": when.out_of_range})
            out.violations.append(
                (name, "timestamp_out_of_range", "rejected", mid, when.out_of_range)
            )
            continue
        if when.skew is not None and abs(when.skew) > clock.SKEW_WORTH_COUNTING:
            detail = f"sender clock off by {when.skew.total_seconds():.0f} s"
            out.violations.append((name, "clock_skew", "corrected", mid, detail))
        problems = plan.check(call.type, name, _payload(call)) if plan else []
        for p in problems:
            action = "rejected" if reject else "flagged"
            out.violations.append((name, p.kind, action, mid, f"{p.field}: {p.message}"))
            if reject:
                out.errors.append({"field": f"batch[{i}].{p.field}", "message": p.message})
        out.flagged += bool(problems) and not reject
        out.pending.append(PendingCall(i, call, mid, when.occurred_at))
    return out


def has_consent(context: Mapping[str, Any]) -> bool:
    """True when the call's context grants analytics consent (Segment's consent object:
    context.consent.categoryPreferences.analytics, any letter case)."""
    consent = context.get("consent")
    prefs = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(prefs, dict):
        return False
    return any(k.lower() == "analytics" and v is True for k, v in prefs.items())


def _name(call: CallIn) -> str:
    if call.type == "track":
        return call.event or ""
    if call.type in ("page", "screen"):
        return call.name or ""
    return call.type


def _payload(call: CallIn) -> dict[str, Any]:
    return dict(call.traits or {}) if call.type == "identify" else dict(call.properties or {})


def _identify_calls(
    conn: Conn, source: Source, todo: Sequence[PendingCall], rules: IdentityRules
) -> list[Violation]:
    """Run identify and alias calls in order; the (flagged) traits that could not be used."""
    violations: list[Violation] = []
    for p in todo:
        c = p.call
        if c.type == "identify":
            res = identify.identify(
                conn, source_id=source.id, anonymous_id=c.anonymous_id, user_id=c.user_id,
                traits=c.traits or {}, at=p.occurred_at, rules=rules,
            )  # fmt: skip
            for fld, msg in res.bad_traits:
                violations.append(
                    ("identify", "invalid_trait", "flagged", p.message_id, f"{fld}: {msg}")
                )
        elif c.type == "alias" and c.previous_id and c.user_id:
            found = identify.profiles_of_user_ids(conn, [c.user_id], rules)
            if c.user_id in found:
                identify.link(
                    conn, source.id, c.previous_id, found[c.user_id], c.user_id, p.occurred_at
                )
    return violations


def _profiles(conn: Conn, todo: Sequence[PendingCall], rules: IdentityRules) -> dict[str, int]:
    """'a:<anonymous id>' / 'u:<user id>' -> profile id, for the senders already known."""
    anon = [p.call.anonymous_id for p in todo if p.call.anonymous_id]
    users = [p.call.user_id for p in todo if p.call.user_id]
    out = {f"a:{k}": v for k, v in repo.profiles_of_anonymous(conn, anon).items()}
    out |= {f"u:{k}": v for k, v in identify.profiles_of_user_ids(conn, users, rules).items()}
    return out


def _row(
    source_id: str, p: PendingCall, received_at: datetime, profiles: Mapping[str, int]
) -> tuple[Any, ...]:
    """The COPY row (repository.EVENT_COLUMNS order) of a call; properties as stored."""
    c = p.call
    props = (c.traits if c.type == "identify" else c.properties) or {}
    profile = profiles.get(f"u:{c.user_id}") if c.user_id and profiles else None
    if profile is None and c.anonymous_id and profiles:
        profile = profiles.get(f"a:{c.anonymous_id}")
    return (
        p.occurred_at, received_at, source_id, p.message_id, c.type,
        _name(c) if c.type != "identify" else None, profile, c.anonymous_id, c.user_id,
        Jsonb(props, to_json), _text(props.get("store_id")), _decimal(props.get("revenue")),
    )  # fmt: skip


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def _decimal(value: Any) -> Decimal | None:
    """A promoted revenue: a finite number or numeric string, else None (kept in properties)."""
    if type(value) is float:  # the usual case, without a round trip through Decimal's parser
        return Decimal(repr(value)) if math.isfinite(value) and abs(value) < 1e15 else None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return d if d.is_finite() and abs(d) < Decimal(10) ** 15 else None
