"""The points ledger: earn creates a lot with an expiry, burn consumes lots oldest-expiring first,
expiry takes only unconsumed points, transfers keep each lot's expiry, reversal takes back an earn.

Every mutation locks the account row(s) (SELECT ... FOR UPDATE, in id order), so concurrent burns
on one account serialise and can never overdraw it. Entries are append-only.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from cloud.crm.errors import (
    CrmConflictError,
    CrmInvalidInputError,
    CrmNotFoundError,
    InsufficientPointsError,
)
from cloud.crm.loyalty import tiers
from cloud.crm.loyalty.program import LoyaltyProgram
from cloud.db.repositories import crm_identity as id_repo
from cloud.db.repositories import crm_loyalty as repo

Conn = psycopg.Connection[Any]
Lot = tuple[int, int, datetime]


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _positive(points: int) -> int:
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise CrmInvalidInputError(f"points must be a positive whole number, got {points!r}")
    return points


def _lock(conn: Conn, *account_ids: int, active: bool = True) -> dict[int, dict[str, Any]]:
    rows = repo.lock_accounts(conn, account_ids)
    for aid in account_ids:
        if aid not in rows:
            raise CrmNotFoundError(f"loyalty account {aid} does not exist")
        if active and rows[aid]["status"] != "active":
            raise CrmConflictError(f"loyalty account {aid} is closed")
    return rows


def open_account(
    conn: Conn,
    *,
    profile_id: int,
    member_number: str | None = None,
    now: datetime | None = None,
    program: LoyaltyProgram | None = None,
) -> dict[str, Any]:
    """Open an account for a live profile; the member number becomes one of its identifiers."""
    program = program or LoyaltyProgram()
    when = _now(now)
    id_repo.lock_identity(conn)  # the member number becomes an identifier
    live = id_repo.resolve_profile_id(conn, profile_id)
    if live is None:
        raise CrmNotFoundError(f"profile {profile_id} does not exist")
    number = (member_number or f"M{secrets.randbelow(10**10):010d}").strip().upper()
    if not number.isalnum() or len(number) > 32:
        raise CrmInvalidInputError(f"member_number {member_number!r}: 1-32 letters or digits")
    records = id_repo.record_ids_of_profile(conn, live)
    owner = id_repo.profile_by_identifier(conn, "loyalty_number", number)
    if repo.member_number_taken(conn, number) or owner not in (None, live):
        raise CrmConflictError(f"member number {number} is already in use")
    tier = program.tiers[0].name
    end = when + timedelta(days=program.tier_window_days)
    account_id = repo.insert_account(
        conn, profile_id=live, member_number=number, tier=tier, period_end=end
    )
    if records:
        id_repo.add_identifiers(conn, records[0], [("loyalty_number", number, number)])
    repo.insert_tier_change(
        conn,
        account_id=account_id,
        frm=None,
        to=tier,
        reason="account opened",
        qualifying=0,
        when=when,
    )
    return {"id": account_id, "profile_id": live, "member_number": number, "tier": tier}


def credit(
    conn: Conn,
    *,
    account_id: int,
    points: int,
    kind: str = "earn",
    now: datetime | None = None,
    qualifying: int = 0,
    transaction_id: int | None = None,
    reference: str | None = None,
    detail: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
    program: LoyaltyProgram | None = None,
) -> int:
    """Credit points as a new lot (caller holds the account lock); returns the entry id."""
    program = program or LoyaltyProgram()
    when = _now(now)
    entry = repo.insert_entry(
        conn,
        account_id=account_id,
        kind=kind,
        points=points,
        occurred_at=when,
        qualifying=qualifying,
        transaction_id=transaction_id,
        reference=reference,
        detail=detail,
    )
    expiry = expires_at or when + timedelta(days=program.expiry_days)
    repo.insert_lot(conn, account_id=account_id, entry_id=entry, points=points, expires_at=expiry)
    if qualifying > 0:
        tiers.upgrade_if_earned(conn, account_id=account_id, now=when, program=program)
    return entry


def take(lots: Sequence[Lot], points: int) -> list[tuple[int, int, datetime]]:
    """(lot, points, expiry) taken from lots in order until `points` are covered."""
    takes: list[tuple[int, int, datetime]] = []
    need = points
    for lot_id, remaining, expires in lots:
        if need == 0:
            break
        n = min(need, remaining)
        takes.append((lot_id, n, expires))
        need -= n
    return takes


def debit(
    conn: Conn,
    *,
    account_id: int,
    points: int,
    kind: str,
    now: datetime,
    reference: str | None = None,
    detail: dict[str, Any] | None = None,
) -> tuple[int, list[tuple[int, int, datetime]], int]:
    """Consume unexpired lots oldest-expiring first (account locked by the caller); returns
    (entry id, (lot, points, expiry) taken, balance left)."""
    available, lots = repo.lots_to_cover(conn, account_id, now, points)
    if points > available:
        raise InsufficientPointsError(
            f"account {account_id} holds {available} points; {points} were requested"
        )
    takes = take(lots, points)
    entry = repo.insert_entry(
        conn,
        account_id=account_id,
        kind=kind,
        points=-points,
        occurred_at=now,
        reference=reference,
        detail=detail,
    )
    repo.consume(conn, entry, [(lot, n) for lot, n, _ in takes])
    return entry, takes, available - points


def earn(
    conn: Conn,
    *,
    account_id: int,
    points: int,
    reason: str,
    now: datetime | None = None,
    program: LoyaltyProgram | None = None,
) -> dict[str, Any]:
    """Credit goodwill points (non-qualifying)."""
    _positive(points)
    when = _now(now)
    _lock(conn, account_id)
    entry = credit(
        conn, account_id=account_id, points=points, now=when, reference=reason, program=program
    )
    return {"entry_id": entry, "points": points, "balance": repo.balance(conn, account_id, when)}


def burn(
    conn: Conn,
    *,
    account_id: int,
    points: int,
    reference: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Spend points; InsufficientPointsError when the account cannot cover them."""
    _positive(points)
    when = _now(now)
    _lock(conn, account_id)
    entry, _, left = debit(
        conn, account_id=account_id, points=points, kind="burn", now=when, reference=reference
    )
    return {"entry_id": entry, "points": points, "balance": left}


def transfer(
    conn: Conn,
    *,
    from_account_id: int,
    to_account_id: int,
    points: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Move points between members; each moved lot keeps its expiry."""
    _positive(points)
    if from_account_id == to_account_id:
        raise CrmInvalidInputError("a transfer needs two different accounts")
    when = _now(now)
    _lock(conn, from_account_id, to_account_id)
    ref = f"transfer {from_account_id}->{to_account_id}"
    out_entry, takes, left = debit(
        conn,
        account_id=from_account_id,
        points=points,
        kind="transfer_out",
        now=when,
        reference=ref,
    )
    in_entry = repo.insert_entry(
        conn,
        account_id=to_account_id,
        kind="transfer_in",
        points=points,
        occurred_at=when,
        reference=ref,
        detail={"from_entry": out_entry},
    )
    for _, n, expires in takes:
        repo.insert_lot(
            conn, account_id=to_account_id, entry_id=in_entry, points=n, expires_at=expires
        )
    return {
        "out_entry_id": out_entry,
        "in_entry_id": in_entry,
        "points": points,
        "from_balance": left,
        "to_balance": repo.balance(conn, to_account_id, when),
    }


def expire_account(conn: Conn, *, account_id: int, now: datetime | None = None) -> int:
    """Expire the unconsumed points of an account's past-due lots; returns points expired."""
    when = _now(now)
    _lock(conn, account_id, active=False)  # points of closed accounts expire too
    due = repo.due_lots(conn, account_id, when)
    total = sum(r for _, r, _ in due)
    if total == 0:
        return 0
    entry = repo.insert_entry(
        conn,
        account_id=account_id,
        kind="expire",
        points=-total,
        occurred_at=when,
        detail={"lots": [lot for lot, _, _ in due]},
    )
    repo.consume(conn, entry, [(lot, r) for lot, r, _ in due])
    return total


def expire_due(conn: Conn, *, now: datetime | None = None, batch: int = 500) -> int:
    """Expire every past-due lot, one account per transaction when `conn` is autocommit (else
    in savepoints of the caller's transaction); returns points expired."""
    when = _now(now)
    total = 0
    while ids := repo.accounts_with_due_lots(conn, when, batch):
        for account_id in ids:
            with conn.transaction():
                total += expire_account(conn, account_id=account_id, now=when)
    return total


def refund_entry(conn: Conn, *, account_id: int, burn_entry_id: int, now: datetime) -> int:
    """Give back what a burn consumed, each lot with its original expiry (account locked)."""
    taken = repo.consumptions_of_entry(conn, burn_entry_id)
    total = sum(n for _, n, _ in taken)
    entry = repo.insert_entry(
        conn,
        account_id=account_id,
        kind="refund",
        points=total,
        occurred_at=now,
        reference=f"refund of entry {burn_entry_id}",
    )
    for _, n, expires in taken:
        repo.insert_lot(conn, account_id=account_id, entry_id=entry, points=n, expires_at=expires)
    return entry


def lock_account(conn: Conn, account_id: int) -> dict[str, Any]:
    """Lock one active account row and return it."""
    return _lock(conn, account_id)[account_id]
