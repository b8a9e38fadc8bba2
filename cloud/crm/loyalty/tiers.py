"""Tiers from rolling qualifying points (or spend): upgrade at once, downgrade only when the
tier period ends; every change is kept in the tier history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from cloud.crm.loyalty.program import LoyaltyProgram
from cloud.db.repositories import crm_loyalty as repo

Conn = psycopg.Connection[Any]


def qualifying(conn: Conn, account_id: int, now: datetime, program: LoyaltyProgram) -> int:
    """Qualifying amount in the rolling window ending at `now`."""
    since = now - timedelta(days=program.tier_window_days)
    return repo.qualifying_since(conn, account_id, since, now)


def upgrade_if_earned(
    conn: Conn, *, account_id: int, now: datetime, program: LoyaltyProgram
) -> str | None:
    """Upgrade a (locked) account at once when it qualifies for a higher tier."""
    account = repo.get_account(conn, account_id)
    assert account is not None
    q = qualifying(conn, account_id, now, program)
    target = program.tier_for(q)
    if program.tier_rank(target) <= program.tier_rank(account["tier"]):
        return None
    repo.set_tier(conn, account_id, target, now + timedelta(days=program.tier_window_days))
    repo.insert_tier_change(
        conn,
        account_id=account_id,
        frm=account["tier"],
        to=target,
        reason=f"upgrade: {q} qualifying in {program.tier_window_days} days",
        qualifying=q,
        when=now,
    )
    return target


def review_account(
    conn: Conn, *, account_id: int, now: datetime, program: LoyaltyProgram
) -> str | None:
    """At period end: set the tier the window earned and start a new period; returns the new
    tier when it changed (a downgrade, or an upgrade after the programme's thresholds fell)."""
    rows = repo.lock_accounts(conn, [account_id])
    account = rows.get(account_id)
    if account is None or account["tier_period_end"] > now:
        return None
    q = qualifying(conn, account_id, now, program)
    target = program.tier_for(q)
    period_end = now + timedelta(days=program.tier_window_days)
    if target == account["tier"]:
        repo.set_tier(conn, account_id, target, period_end)
        return None
    repo.set_tier(conn, account_id, target, period_end)
    repo.insert_tier_change(
        conn,
        account_id=account_id,
        frm=account["tier"],
        to=target,
        reason=f"period end: {q} qualifying in {program.tier_window_days} days",
        qualifying=q,
        when=now,
    )
    return target


def review_due(
    conn: Conn,
    *,
    now: datetime | None = None,
    program: LoyaltyProgram | None = None,
    batch: int = 500,
) -> int:
    """Review every account whose tier period ended; returns how many changed tier."""
    program = program or LoyaltyProgram()
    when = now or datetime.now(UTC)
    changed = 0
    while ids := repo.accounts_due_for_review(conn, when, batch):
        for account_id in ids:
            with conn.transaction():
                changed += (
                    review_account(conn, account_id=account_id, now=when, program=program)
                    is not None
                )
    return changed
