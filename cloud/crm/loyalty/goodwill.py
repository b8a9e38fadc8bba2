"""Goodwill credits with limits per role and a four-eyes approval above a threshold.

A credit over the caller's role limit is refused. One over the approval threshold is recorded as
pending and moves no points; another admin (never the requester) approves it, which credits the
points in the same transaction, or rejects it. Credits up to the threshold move at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.core.errors import PermissionDeniedError
from cloud.crm.errors import CrmConflictError, CrmInvalidInputError, CrmNotFoundError
from cloud.crm.loyalty import ledger
from cloud.crm.loyalty.program import LoyaltyProgram
from cloud.db.repositories import crm_point_approvals as repo

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class GoodwillPolicy:
    """Most points one call may credit, per role, and the size above which a second admin
    must approve."""

    max_points: Mapping[str, int]
    approval_threshold: int


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for k in ("requested_at", "decided_at"):
        out[k] = out[k].isoformat() if out[k] is not None else None
    return out


def request_credit(
    conn: Conn,
    *,
    account_id: int,
    points: int,
    reason: str,
    requester: str,
    role: str,
    policy: GoodwillPolicy,
    program: LoyaltyProgram | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Credit goodwill points at once, or record them for approval above the threshold."""
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise CrmInvalidInputError(f"points must be a positive whole number, got {points!r}")
    limit = policy.max_points.get(role, 0)
    if points > limit:
        raise PermissionDeniedError(
            f"the role {role} may credit at most {limit} goodwill points in one call"
        )
    if points <= policy.approval_threshold:
        out = ledger.earn(
            conn, account_id=account_id, points=points, reason=reason, program=program, now=now
        )
        return {**out, "status": "credited"}
    ledger.lock_account(conn, account_id)  # exists and is open
    row = repo.insert(
        conn,
        account_id=account_id,
        points=points,
        reason=reason,
        requested_by=requester,
        when=now or datetime.now(UTC),
    )
    return {"status": "pending_approval", "approval_id": row["id"], "points": points}


def _pending(conn: Conn, approval_id: int, decider: str) -> dict[str, Any]:
    row = repo.lock(conn, approval_id)
    if row is None:
        raise CrmNotFoundError(f"goodwill approval {approval_id} does not exist")
    if row["status"] != "pending":
        raise CrmConflictError(f"goodwill approval {approval_id} is already {row['status']}")
    if row["requested_by"] == decider:
        raise PermissionDeniedError("a goodwill credit needs another admin than its requester")
    return row


def approve(
    conn: Conn,
    *,
    approval_id: int,
    approver: str,
    program: LoyaltyProgram | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Approve a pending credit and move its points, in one transaction."""
    when = now or datetime.now(UTC)
    with conn.transaction():
        row = _pending(conn, approval_id, approver)
        moved = ledger.earn(
            conn,
            account_id=int(row["account_id"]),
            points=int(row["points"]),
            reason=str(row["reason"]),
            program=program,
            now=when,
        )
        done = repo.decide(
            conn,
            approval_id,
            status="approved",
            decided_by=approver,
            when=when,
            note=None,
            entry_id=int(moved["entry_id"]),
        )
    return {**_public(done), "balance": moved["balance"]}


def reject(
    conn: Conn, *, approval_id: int, approver: str, note: str | None, now: datetime | None = None
) -> dict[str, Any]:
    """Reject a pending credit; no points move."""
    when = now or datetime.now(UTC)
    with conn.transaction():
        _pending(conn, approval_id, approver)
        done = repo.decide(
            conn,
            approval_id,
            status="rejected",
            decided_by=approver,
            when=when,
            note=note,
            entry_id=None,
        )
    return _public(done)


def approvals(conn: Conn, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Goodwill approvals, oldest first."""
    return [_public(r) for r in repo.listing(conn, status=status, limit=limit)]
