"""POS transactions with line items: the ingestion path for purchases (see docs/crm.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg

from cloud.crm import lifecycle
from cloud.crm.errors import CrmInvalidInputError, CrmNotFoundError
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.identity.service import IdentifierInput, ingest_event_record
from cloud.crm.loyalty.program import LoyaltyProgram
from cloud.crm.money import to_amount, validate_currency
from cloud.db.repositories import crm_events as repo

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class LineItem:
    """One line of a receipt."""

    sku: str
    quantity: Decimal
    unit_price: Decimal
    category: str | None = None


@dataclass(frozen=True)
class TransactionResult:
    """What record_transaction did."""

    transaction_id: int
    profile_id: int
    created: bool
    points_earned: int


def _check_items(items: Sequence[LineItem]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for n, item in enumerate(items, start=1):
        try:
            qty = Decimal(str(item.quantity))
        except ArithmeticError as exc:
            raise CrmInvalidInputError(
                f"items[{n}].quantity {item.quantity!r} is not a number"
            ) from exc
        price = to_amount(item.unit_price, field=f"items[{n}].unit_price")
        if not item.sku or len(item.sku) > 64:
            raise CrmInvalidInputError(f"items[{n}].sku must be 1-64 characters")
        if not qty.is_finite() or qty <= 0:
            raise CrmInvalidInputError(f"items[{n}].quantity must be positive, got {item.quantity}")
        if price < 0:
            raise CrmInvalidInputError(f"items[{n}].unit_price must not be negative")
        amount = (qty * price).quantize(Decimal("0.01"))
        rows.append((n, item.sku, item.category, qty, price, amount))
    return rows


def _validate(*, external_id: str, occurred_at: datetime, total: Decimal, kind: str) -> None:
    if occurred_at.tzinfo is None:
        raise CrmInvalidInputError("occurred_at must be timezone-aware")
    if not external_id or len(external_id) > 128:
        raise CrmInvalidInputError("external_id must be 1-128 characters")
    if kind not in ("sale", "return"):
        raise CrmInvalidInputError(f"kind must be 'sale' or 'return', got {kind!r}")
    if (kind == "sale" and total < 0) or (kind == "return" and total > 0):
        raise CrmInvalidInputError(f"total_amount {total} has the wrong sign for a {kind}")


def record_transaction(
    conn: Conn,
    *,
    store_id: str,
    external_id: str,
    occurred_at: datetime,
    currency: str,
    total_amount: Decimal | str | int,
    identifiers: IdentifierInput,
    items: Sequence[LineItem] = (),
    kind: Literal["sale", "return"] = "sale",
    attributes: Mapping[str, Any] | None = None,
    earn_points: bool = True,
    program: LoyaltyProgram | None = None,
    rules: IdentityRules | None = None,
) -> TransactionResult:
    """Record a POS transaction for the person its identifiers resolve to (idempotent by
    store and receipt id), advance the lifecycle and earn loyalty points by `program`."""
    from cloud.crm.loyalty import purchases

    if earn_points and program is None:
        # No silent default: earning by a built-in programme while another is configured
        # credits wrong points without anyone noticing.
        raise TypeError("record_transaction earns points: pass program= (or earn_points=False)")
    currency = validate_currency(currency)
    total = to_amount(total_amount, field="total_amount")
    _validate(external_id=external_id, occurred_at=occurred_at, total=total, kind=kind)
    rows = _check_items(items)
    # These reads also open the caller's transaction (non-autocommit connections), so the block
    # below is a savepoint and the caller decides when to commit.
    if not repo.store_exists(conn, store_id):
        raise CrmInvalidInputError(f"unknown store {store_id!r}")
    done = repo.find_transaction(conn, store_id=store_id, external_id=external_id)
    if done is not None:
        return _existing(conn, done)
    with conn.transaction():
        buyer = ingest_event_record(
            conn,
            source="pos",
            identifiers=identifiers,
            attributes=attributes,
            observed_at=occurred_at,
            rules=rules,
        )
        txn_id = repo.insert_transaction(
            conn,
            profile_id=buyer.profile_id,
            record_id=buyer.record_id,
            store_id=store_id,
            external_id=external_id,
            occurred_at=occurred_at,
            currency=currency,
            total_amount=total,
            kind=kind,
        )
        if txn_id is None:  # a concurrent call stored the same receipt first
            found = repo.find_transaction(conn, store_id=store_id, external_id=external_id)
            assert found is not None
            return _existing(conn, found)
        repo.insert_items(conn, txn_id, rows)
        lifecycle.advance_profile(
            conn, profile_id=buyer.profile_id, store_id=store_id, when=occurred_at
        )
        points = 0
        if program is not None and earn_points and kind == "sale":
            points = purchases.earn_for_transaction(conn, transaction_id=txn_id, program=program)
    return TransactionResult(txn_id, buyer.profile_id, True, points)


def _existing(conn: Conn, row: dict[str, Any]) -> TransactionResult:
    from cloud.db.repositories import crm_loyalty as loyalty_repo

    points = loyalty_repo.points_earned_for_transaction(conn, int(row["id"]))
    return TransactionResult(int(row["id"]), int(row["profile_id"]), False, points)


def reverse_transaction(
    conn: Conn, *, transaction_id: int, when: datetime | None = None
) -> dict[str, Any]:
    """Reverse a purchase: flag it and take back the points it earned (idempotent)."""
    from cloud.crm.loyalty import purchases

    when = when or datetime.now(UTC)
    with conn.transaction():
        txn = repo.get_transaction(conn, transaction_id, lock=True)
        if txn is None:
            raise CrmNotFoundError(f"transaction {transaction_id} does not exist")
        if txn["reversed_at"] is not None:
            return {"transaction_id": transaction_id, "reversed_points": 0, "already": True}
        repo.mark_reversed(conn, transaction_id, when)
        points = purchases.reverse_earn(conn, transaction_id=transaction_id, now=when)
    return {"transaction_id": transaction_id, "reversed_points": points, "already": False}
