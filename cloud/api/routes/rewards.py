"""The reward catalogue and redemptions (reserve, fulfil, cancel)."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.encoders import jsonable_encoder

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.routes.customers_deps import IdempotencyKeyDep
from cloud.api.schemas.crm_loyalty import (
    RedemptionCreate,
    RedemptionPublic,
    RewardCreate,
    RewardPublic,
)
from cloud.api.schemas.limits import RowId
from cloud.crm.idempotency import run_once
from cloud.crm.loyalty import rewards
from cloud.db.repositories import crm_rewards as repo

router = APIRouter(tags=["rewards"])


@router.post("/v1/rewards", status_code=status.HTTP_201_CREATED, summary="Add a reward")
def create_reward(body: RewardCreate, conn: ConnDep, _: MarketerDep) -> RewardPublic:
    """Add an item to the catalogue."""
    return RewardPublic.model_validate(rewards.create_reward(conn, **body.model_dump()))


@router.get("/v1/rewards", summary="The active catalogue")
def list_rewards(conn: ConnDep, _: MarketerDep) -> list[RewardPublic]:
    """Active rewards with stock."""
    return [RewardPublic.model_validate(r) for r in repo.list_rewards(conn)]


@router.post(
    "/v1/rewards/{reward_id}/redemptions",
    status_code=status.HTTP_201_CREATED,
    summary="Reserve a reward (idempotent): takes stock and points",
)
def redeem(
    reward_id: RowId, body: RedemptionCreate, conn: ConnDep, _: MarketerDep, key: IdempotencyKeyDep
) -> RedemptionPublic:
    """409 out-of-stock or insufficient-points when it cannot be reserved."""
    out = run_once(
        conn,
        scope=f"redeem:{reward_id}",
        key=key,
        request=body.model_dump(),
        action=lambda: jsonable_encoder(
            rewards.redeem(conn, reward_id=reward_id, account_id=body.account_id)
        ),
    )
    return RedemptionPublic.model_validate(out)


@router.post("/v1/redemptions/{redemption_id}/cancel", summary="Cancel a reservation")
def cancel(
    redemption_id: RowId, conn: ConnDep, _: MarketerDep, key: IdempotencyKeyDep
) -> RedemptionPublic:
    """Stock and points come back (points keep their expiry)."""
    out = run_once(
        conn,
        scope=f"cancel:{redemption_id}",
        key=key,
        request={"id": redemption_id},
        action=lambda: jsonable_encoder(rewards.cancel(conn, redemption_id=redemption_id)),
    )
    return RedemptionPublic.model_validate(out)


@router.post("/v1/redemptions/{redemption_id}/fulfil", summary="Hand a reserved reward over")
def fulfil(redemption_id: RowId, conn: ConnDep, _: MarketerDep) -> RedemptionPublic:
    """Marks the reservation fulfilled."""
    return RedemptionPublic.model_validate(rewards.fulfil(conn, redemption_id=redemption_id))
