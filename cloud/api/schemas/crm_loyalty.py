"""Schemas of the loyalty API: accounts, earn/burn/transfer, rewards and redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.api.schemas.limits import PG_BIGINT_MAX, PG_INT_MAX


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountCreate(_In):
    """Open a loyalty account for a customer."""

    profile_id: int = Field(ge=1, le=PG_BIGINT_MAX, description="Customer profile id.")
    member_number: str | None = Field(default=None, max_length=32, description="Card number.")


class AccountPublic(BaseModel):
    """A loyalty account."""

    id: int = Field(description="Account id.")
    profile_id: int = Field(description="Customer profile id.")
    member_number: str = Field(description="Card number.")
    tier: str = Field(description="Current tier.")
    tier_period_end: datetime | None = Field(default=None, description="Next tier review.")
    balance: int = Field(default=0, description="Unexpired points.")
    tier_history: list[dict[str, Any]] = Field(default_factory=list, description="Tier changes.")


class PointsChange(_In):
    """Points to earn or burn."""

    points: int = Field(le=PG_INT_MAX, description="Positive whole number of points.")
    reason: str | None = Field(default=None, max_length=200, description="Reference shown.")


class TransferCreate(_In):
    """Move points between members."""

    from_account_id: int = Field(ge=1, le=PG_BIGINT_MAX, description="Paying account.")
    to_account_id: int = Field(ge=1, le=PG_BIGINT_MAX, description="Receiving account.")
    points: int = Field(le=PG_INT_MAX, description="Positive whole number of points.")


class MovementPublic(BaseModel):
    """Result of earn, burn or transfer; a goodwill credit above the approval threshold comes
    back with status `pending_approval` and its `approval_id`, and moves nothing yet."""

    model_config = ConfigDict(extra="allow")

    points: int = Field(description="Points moved.")
    replayed: bool = Field(description="True for an idempotent retry (nothing moved again).")


class EntryPublic(BaseModel):
    """A ledger entry."""

    id: int = Field(description="Entry id.")
    kind: str = Field(description="earn, burn, expire, transfer_in/out, reversal, refund.")
    points: int = Field(description="Signed points.")
    qualifying: int = Field(description="Qualifying points for tiers.")
    transaction_id: int | None = Field(description="Transaction, for earns and reversals.")
    reference: str | None = Field(description="Reference.")
    detail: dict[str, Any] = Field(description="Breakdown.")
    occurred_at: datetime = Field(description="When.")


class RewardCreate(_In):
    """A catalogue item."""

    # PostgreSQL text cannot hold NUL: the schema says so rather than a 422 after the fact
    code: str = Field(
        min_length=1, max_length=64, pattern=r"^[^\x00]+$", description="Unique code."
    )
    name: str = Field(
        min_length=1, max_length=200, pattern=r"^[^\x00]+$", description="Display name."
    )
    cost_points: int = Field(gt=0, le=PG_INT_MAX, description="Points it costs.")
    stock: int = Field(ge=0, le=PG_INT_MAX, description="Units available.")


class RewardPublic(BaseModel):
    """A catalogue item."""

    id: int = Field(description="Reward id.")
    code: str = Field(description="Code.")
    name: str = Field(description="Name.")
    cost_points: int = Field(description="Cost.")
    stock: int = Field(description="Units left.")
    active: bool = Field(description="Redeemable.")


class RedemptionCreate(_In):
    """Reserve a reward for an account."""

    account_id: int = Field(ge=1, le=PG_BIGINT_MAX, description="Account paying the points.")


class RedemptionPublic(BaseModel):
    """A redemption."""

    id: int = Field(description="Redemption id.")
    reward_id: int = Field(description="Reward.")
    account_id: int = Field(description="Account.")
    points: int = Field(description="Points paid.")
    status: str = Field(description="reserved, fulfilled or cancelled.")
    created_at: datetime = Field(description="When reserved.")
    replayed: bool = Field(default=False, description="True for an idempotent retry.")


class ApprovalPublic(BaseModel):
    """A goodwill credit above the approval threshold and its decision."""

    id: int = Field(description="Approval id.")
    account_id: int = Field(description="Account to credit.")
    points: int = Field(description="Points asked for.")
    reason: str = Field(description="Reference shown on the entry.")
    requested_by: str = Field(description="Who asked for the credit.")
    requested_at: datetime = Field(description="When.")
    status: Literal["pending", "approved", "rejected"] = Field(description="Decision so far.")
    decided_by: str | None = Field(description="The admin who decided (never the requester).")
    decided_at: datetime | None = Field(description="When it was decided.")
    note: str | None = Field(description="Why it was rejected.")
    entry_id: int | None = Field(description="The ledger entry of an approved credit.")
    balance: int | None = Field(default=None, description="Balance after an approval.")
    replayed: bool = Field(default=False, description="True for an idempotent retry.")


class ApprovalReject(_In):
    """Why a goodwill credit is rejected."""

    note: str | None = Field(default=None, max_length=500, description="Reason for the record.")
