"""Points for purchases: earn once per sale by the programme's rules, take back on reversal."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import psycopg

from cloud.crm.errors import CrmNotFoundError
from cloud.crm.loyalty import ledger
from cloud.crm.loyalty.earning import Purchase, PurchaseLine, compute_earn
from cloud.crm.loyalty.program import LoyaltyProgram
from cloud.db.repositories import crm_events as ev_repo
from cloud.db.repositories import crm_identity as id_repo
from cloud.db.repositories import crm_loyalty as repo

Conn = psycopg.Connection[Any]


def _member_account(conn: Conn, profile_id: int) -> dict[str, Any] | None:
    members = id_repo.member_profile_ids(conn, profile_id)
    active = [a for a in repo.accounts_of_profiles(conn, members) if a["status"] == "active"]
    return active[0] if active else None


def earn_for_transaction(conn: Conn, *, transaction_id: int, program: LoyaltyProgram) -> int:
    """Credit a sale's points by `program` (the configured one, never a built-in default) to its
    person's (oldest active) account, once; returns points."""
    txn = ev_repo.get_transaction(conn, transaction_id)
    if txn is None:
        raise CrmNotFoundError(f"transaction {transaction_id} does not exist")
    account = _member_account(conn, int(txn["profile_id"]))
    if account is None or txn["kind"] != "sale" or txn["reversed_at"] is not None:
        return 0
    ledger.lock_account(conn, int(account["id"]))
    if repo.earn_entries_of_transaction(conn, transaction_id):
        return repo.points_earned_for_transaction(conn, transaction_id)
    members = id_repo.member_profile_ids(conn, int(txn["profile_id"]))
    profile = id_repo.get_profile(conn, int(txn["profile_id"]))
    birth = (profile or {}).get("attributes", {}).get("birth_date")
    lines = tuple(
        PurchaseLine(sku=i["sku"], category=i["category"], amount=i["amount"])
        for i in ev_repo.transaction_items(conn, transaction_id)
    )
    purchase = Purchase(
        currency=txn["currency"],
        total=txn["total_amount"],
        occurred_at=txn["occurred_at"],
        store_id=txn["store_id"],
        lines=lines,
        birth_date=date.fromisoformat(birth) if birth else None,
        first_purchase=repo.sales_before(conn, members, transaction_id) == 0,
    )
    breakdown = compute_earn(purchase, program)
    if breakdown.total <= 0:
        return 0
    ledger.credit(
        conn,
        account_id=int(account["id"]),
        points=breakdown.total,
        qualifying=breakdown.qualifying,
        transaction_id=transaction_id,
        reference=f"transaction {transaction_id}",
        detail={"steps": breakdown.steps},
        program=program,
    )
    return breakdown.total


def reverse_earn(conn: Conn, *, transaction_id: int, now: datetime | None = None) -> int:
    """Take back what a transaction earned: from its own lot first, then oldest-expiring lots;
    points already spent beyond the balance are written off (recorded in the entry detail)."""
    when = now or datetime.now(UTC)
    taken = 0
    for e in repo.earn_entries_of_transaction(conn, transaction_id):
        account_id = int(e["account_id"])
        ledger.lock_account(conn, account_id)
        lots = repo.open_lots(conn, account_id, when)
        ordered = [lot for lot in lots if lot[0] == e["lot_id"]]
        ordered += [lot for lot in lots if lot[0] != e["lot_id"]]
        takes = ledger.take(ordered, int(e["points"]))
        got = sum(n for _, n, _ in takes)
        entry = repo.insert_entry(
            conn,
            account_id=account_id,
            kind="reversal",
            points=-got,
            occurred_at=when,
            qualifying=-int(e["qualifying"]),
            transaction_id=transaction_id,
            reference=f"reversal of entry {e['id']}",
            detail={"written_off": int(e["points"]) - got},
        )
        if takes:
            repo.consume(conn, entry, [(lot, n) for lot, n, _ in takes])
        taken += got
    return taken
