"""The reward catalogue: stock, redemption by reservation, fulfilment and cancellation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.crm.errors import (
    CrmConflictError,
    CrmInvalidInputError,
    CrmNotFoundError,
    OutOfStockError,
)
from cloud.crm.loyalty import ledger
from cloud.db.repositories import crm_rewards as repo

Conn = psycopg.Connection[Any]


def create_reward(
    conn: Conn, *, code: str, name: str, cost_points: int, stock: int
) -> dict[str, Any]:
    """Add a reward to the catalogue."""
    if cost_points <= 0 or stock < 0:
        raise CrmInvalidInputError("cost_points must be positive and stock not negative")
    if repo.reward_by_code(conn, code) is not None:
        raise CrmConflictError(f"reward code {code!r} already exists")
    return repo.insert_reward(conn, code=code, name=name, cost_points=cost_points, stock=stock)


def redeem(
    conn: Conn, *, reward_id: int, account_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Reserve a reward: one unit of stock and its points, in one transaction."""
    when = now or datetime.now(UTC)
    reward = repo.lock_reward(conn, reward_id)
    if reward is None or not reward["active"]:
        raise CrmNotFoundError(f"reward {reward_id} does not exist or is inactive")
    if reward["stock"] <= 0:
        raise OutOfStockError(f"reward {reward['code']} is out of stock")
    ledger.lock_account(conn, account_id)
    entry, _, _ = ledger.debit(
        conn,
        account_id=account_id,
        points=int(reward["cost_points"]),
        kind="burn",
        now=when,
        reference=f"reward {reward['code']}",
    )
    repo.change_stock(conn, reward_id, -1)
    return repo.insert_redemption(
        conn,
        reward_id=reward_id,
        account_id=account_id,
        points=int(reward["cost_points"]),
        burn_entry_id=entry,
        when=when,
    )


def cancel(conn: Conn, *, redemption_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Cancel a reservation: the stock returns and the points come back with their expiry."""
    when = now or datetime.now(UTC)
    red = repo.lock_redemption(conn, redemption_id)
    if red is None:
        raise CrmNotFoundError(f"redemption {redemption_id} does not exist")
    if red["status"] != "reserved":
        raise CrmConflictError(f"redemption {redemption_id} is {red['status']}, not reserved")
    account_id = int(red["account_id"])
    repo.lock_reward(conn, int(red["reward_id"]))  # same lock order as redeem: reward, account
    ledger.lock_account(conn, account_id)
    refund = ledger.refund_entry(
        conn, account_id=account_id, burn_entry_id=int(red["burn_entry_id"]), now=when
    )
    repo.change_stock(conn, int(red["reward_id"]), +1)
    return repo.set_redemption_status(conn, redemption_id, "cancelled", when, refund)


def fulfil(conn: Conn, *, redemption_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Mark a reservation as handed over."""
    when = now or datetime.now(UTC)
    red = repo.lock_redemption(conn, redemption_id)
    if red is None:
        raise CrmNotFoundError(f"redemption {redemption_id} does not exist")
    if red["status"] != "reserved":
        raise CrmConflictError(f"redemption {redemption_id} is {red['status']}, not reserved")
    return repo.set_redemption_status(conn, redemption_id, "fulfilled", when, None)
