"""POS transactions with line items, and reversal of a purchase."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.routes.customers_deps import IdempotencyKeyDep, ProgramDep, RulesDep
from cloud.api.schemas.crm import (
    LineItemPublic,
    ReversalPublic,
    TransactionCreate,
    TransactionDetail,
    TransactionPublic,
)
from cloud.api.schemas.limits import RowId
from cloud.crm.errors import CrmNotFoundError
from cloud.crm.idempotency import run_once
from cloud.crm.transactions import LineItem, record_transaction, reverse_transaction
from cloud.db.repositories import crm_events as repo
from cloud.db.repositories import crm_loyalty as loyalty_repo

router = APIRouter(prefix="/v1/transactions", tags=["transactions"])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Record a POS transaction")
def create_transaction(
    body: TransactionCreate,
    conn: ConnDep,
    _: MarketerDep,
    rules: RulesDep,
    program: ProgramDep,
    response: Response,
) -> TransactionPublic:
    """Idempotent by (store_id, external_id): a repeat answers 200 with the first result."""
    res = record_transaction(
        conn,
        store_id=body.store_id,
        external_id=body.external_id,
        occurred_at=body.occurred_at,
        currency=body.currency,
        total_amount=body.total_amount,
        identifiers=body.identifiers,
        kind=body.kind,
        items=[
            LineItem(sku=i.sku, quantity=i.quantity, unit_price=i.unit_price, category=i.category)
            for i in body.items
        ],
        attributes=body.attributes.model_dump(exclude_none=True, mode="json"),
        rules=rules,
        program=program,
    )
    if not res.created:
        response.status_code = status.HTTP_200_OK
    return TransactionPublic(
        transaction_id=res.transaction_id,
        profile_id=res.profile_id,
        created=res.created,
        points_earned=res.points_earned,
    )


@router.get("/{transaction_id}", summary="A transaction with its line items")
def get_transaction(transaction_id: RowId, conn: ConnDep, _: MarketerDep) -> TransactionDetail:
    """The receipt as stored, with the points it earned."""
    row = repo.get_transaction(conn, transaction_id)
    if row is None:
        raise CrmNotFoundError(f"transaction {transaction_id} does not exist")
    return TransactionDetail(
        **{k: row[k] for k in TransactionDetail.model_fields if k in row},
        points_earned=loyalty_repo.points_earned_for_transaction(conn, transaction_id),
        items=[
            LineItemPublic.model_validate(i) for i in repo.transaction_items(conn, transaction_id)
        ],
    )


@router.post("/{transaction_id}/reverse", summary="Reverse a purchase and its points")
def reverse(
    transaction_id: RowId, conn: ConnDep, _: MarketerDep, key: IdempotencyKeyDep
) -> ReversalPublic:
    """Flags the purchase reversed and takes back the points it earned."""
    out = run_once(
        conn,
        scope=f"reverse:{transaction_id}",
        key=key,
        request={"id": transaction_id},
        action=lambda: reverse_transaction(conn, transaction_id=transaction_id),
    )
    return ReversalPublic.model_validate(out)
