"""Loyalty accounts: open, read, earn, burn, transfer (idempotent), ledger entries, and the
approval of large goodwill credits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from fastapi.encoders import jsonable_encoder

from cloud.api.deps import AdminDep, ConnDep, MarketerDep
from cloud.api.problems import problem_responses
from cloud.api.routes.customers_deps import GoodwillPolicyDep, IdempotencyKeyDep, ProgramDep
from cloud.api.schemas.crm_loyalty import (
    AccountCreate,
    AccountPublic,
    ApprovalPublic,
    ApprovalReject,
    EntryPublic,
    MovementPublic,
    PointsChange,
    TransferCreate,
)
from cloud.api.schemas.limits import RowId
from cloud.crm.errors import CrmNotFoundError
from cloud.crm.idempotency import run_once
from cloud.crm.loyalty import goodwill, ledger
from cloud.db.repositories import crm_loyalty as repo

router = APIRouter(prefix="/v1/loyalty", tags=["loyalty"])


@router.post(
    "/accounts",
    status_code=status.HTTP_201_CREATED,
    summary="Open an account",
    responses=problem_responses(404),
)
def open_account(
    body: AccountCreate, conn: ConnDep, _: MarketerDep, program: ProgramDep
) -> AccountPublic:
    """Open an account; its member number becomes an identifier of the customer."""
    out = ledger.open_account(
        conn, profile_id=body.profile_id, member_number=body.member_number, program=program
    )
    return _account(conn, int(out["id"]))


def _account(conn: ConnDep, account_id: int) -> AccountPublic:
    row = repo.get_account(conn, account_id)
    if row is None:
        raise CrmNotFoundError(f"loyalty account {account_id} does not exist")
    return AccountPublic(
        id=row["id"],
        profile_id=row["profile_id"],
        member_number=row["member_number"],
        tier=row["tier"],
        tier_period_end=row["tier_period_end"],
        balance=repo.balance(conn, account_id, datetime.now(UTC)),
        tier_history=repo.tier_history(conn, account_id),
    )


@router.get("/accounts/{account_id}", summary="Balance, tier and tier history")
def get_account(account_id: RowId, conn: ConnDep, _: MarketerDep) -> AccountPublic:
    """An account with its unexpired balance."""
    return _account(conn, account_id)


@router.get("/accounts/{account_id}/entries", summary="Ledger entries, newest first")
def get_entries(
    account_id: RowId,
    conn: ConnDep,
    _: MarketerDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most entries returned.")] = 100,
) -> list[EntryPublic]:
    """The immutable entries of an account."""
    _account(conn, account_id)
    return [EntryPublic.model_validate(e) for e in repo.entries(conn, account_id, limit)]


@router.post(
    "/accounts/{account_id}/earn",
    summary="Credit goodwill points (idempotent; large credits wait for approval)",
    responses={202: {"model": MovementPublic, "description": "Waits for an admin's approval."}},
)
def earn(
    account_id: RowId,
    body: PointsChange,
    conn: ConnDep,
    who: MarketerDep,
    key: IdempotencyKeyDep,
    program: ProgramDep,
    policy: GoodwillPolicyDep,
    response: Response,
) -> MovementPublic:
    """Credit points as a new lot with the programme's expiry; 403 above the caller's role
    limit, 202 `pending_approval` above the approval threshold (another admin decides)."""
    out = run_once(
        conn,
        scope=f"earn:{account_id}",
        key=key,
        request=body.model_dump(),
        action=lambda: goodwill.request_credit(
            conn,
            account_id=account_id,
            points=body.points,
            reason=body.reason or f"goodwill by {who.subject}",
            requester=who.subject,
            role=who.role.value,
            policy=policy,
            program=program,
        ),
    )
    if out.get("status") == "pending_approval":
        response.status_code = status.HTTP_202_ACCEPTED
    return MovementPublic.model_validate(out)


@router.get("/approvals", summary="Goodwill credits waiting for (or given) approval")
def list_approvals(
    conn: ConnDep,
    _: AdminDep,
    state: Annotated[
        Literal["pending", "approved", "rejected"] | None,
        Query(alias="status", description="Only approvals in this state."),
    ] = "pending",
    limit: Annotated[int, Query(ge=1, le=1000, description="Most approvals returned.")] = 100,
) -> list[ApprovalPublic]:
    """Oldest first."""
    return [
        ApprovalPublic.model_validate(a)
        for a in goodwill.approvals(conn, status=state, limit=limit)
    ]


@router.post("/approvals/{approval_id}/approve", summary="Approve a goodwill credit (idempotent)")
def approve(
    approval_id: RowId, conn: ConnDep, who: AdminDep, key: IdempotencyKeyDep, program: ProgramDep
) -> ApprovalPublic:
    """Credit the points; only an admin other than the requester may approve."""
    out = run_once(
        conn,
        scope=f"approve:{approval_id}",
        key=key,
        request={"decision": "approve"},
        action=lambda: goodwill.approve(
            conn, approval_id=approval_id, approver=who.subject, program=program
        ),
    )
    return ApprovalPublic.model_validate(out)


@router.post("/approvals/{approval_id}/reject", summary="Reject a goodwill credit (idempotent)")
def reject(
    approval_id: RowId,
    body: ApprovalReject,
    conn: ConnDep,
    who: AdminDep,
    key: IdempotencyKeyDep,
) -> ApprovalPublic:
    """No points move; only an admin other than the requester may reject."""
    out = run_once(
        conn,
        scope=f"approve:{approval_id}",
        key=key,
        request={"decision": "reject", **body.model_dump()},
        action=lambda: goodwill.reject(
            conn, approval_id=approval_id, approver=who.subject, note=body.note
        ),
    )
    return ApprovalPublic.model_validate(out)


@router.post("/accounts/{account_id}/burn", summary="Spend points (idempotent, never overdraws)")
def burn(
    account_id: RowId, body: PointsChange, conn: ConnDep, _: MarketerDep, key: IdempotencyKeyDep
) -> MovementPublic:
    """Consume lots oldest-expiring first; 409 insufficient-points when the balance is short."""
    out = run_once(
        conn,
        scope=f"burn:{account_id}",
        key=key,
        request=body.model_dump(),
        action=lambda: ledger.burn(
            conn, account_id=account_id, points=body.points, reference=body.reason
        ),
    )
    return MovementPublic.model_validate(out)


@router.post(
    "/transfers",
    summary="Transfer points between members (idempotent)",
    responses=problem_responses(404),
)
def transfer(
    body: TransferCreate, conn: ConnDep, _: MarketerDep, key: IdempotencyKeyDep
) -> MovementPublic:
    """Moved points keep their expiry."""
    out = run_once(
        conn,
        scope="transfer",
        key=key,
        request=body.model_dump(),
        action=lambda: jsonable_encoder(
            ledger.transfer(
                conn,
                from_account_id=body.from_account_id,
                to_account_id=body.to_account_id,
                points=body.points,
            )
        ),
    )
    return MovementPublic.model_validate(out)
