"""The loyalty programme as configuration: earn rates, multipliers, campaigns, tiers, expiry."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.money import validate_currency


class Campaign(BaseModel):
    """A time-boxed bonus: an extra multiplier and/or fixed points per purchase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Campaign name, shown in the earn breakdown.")
    starts_at: datetime = Field(description="First instant the campaign applies (inclusive).")
    ends_at: datetime = Field(description="End of the campaign (exclusive).")
    multiplier: Decimal = Field(default=Decimal(1), ge=1, description="Multiplier on base points.")
    bonus_points: int = Field(default=0, ge=0, description="Fixed points per qualifying purchase.")
    store_ids: frozenset[str] = Field(
        default=frozenset(), description="Stores it applies to; empty means all stores."
    )


class Tier(BaseModel):
    """A tier reached at `threshold` qualifying points (or spend) in the rolling window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Tier name.")
    threshold: int = Field(ge=0, description="Qualifying amount needed to hold the tier.")


class LoyaltyProgram(BaseModel):
    """Everything that decides how many points a purchase earns and what tier a member holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    earn_rates: dict[str, Decimal] = Field(
        default={
            "USD": Decimal(1),
            "EUR": Decimal(1),
            "GBP": Decimal("1.2"),
            "CNY": Decimal("0.15"),
        },
        description="Base points per currency unit, by ISO 4217 code.",
    )
    sku_multipliers: dict[str, Decimal] = Field(
        default={}, description="Multiplier for a SKU (wins over its category's)."
    )
    category_multipliers: dict[str, Decimal] = Field(
        default={}, description="Multiplier for every line of a category."
    )
    campaigns: list[Campaign] = Field(default=[], description="Bonus campaigns.")
    birthday_multiplier: Decimal = Field(
        default=Decimal(2), ge=1, description="Multiplier on base points in the birthday month."
    )
    first_purchase_bonus: int = Field(
        default=100, ge=0, description="Fixed points for a member's first purchase."
    )
    expiry_days: int = Field(default=365, ge=1, description="Days until earned points expire.")
    tier_basis: Literal["points", "spend"] = Field(
        default="points", description="Tiers by qualifying points or by spend (currency units)."
    )
    tier_window_days: int = Field(default=365, ge=1, description="Rolling qualifying window.")
    tiers: list[Tier] = Field(
        default=[
            Tier(name="member", threshold=0),
            Tier(name="silver", threshold=1000),
            Tier(name="gold", threshold=5000),
        ],
        description="Tiers by ascending threshold; the first must have threshold 0.",
    )

    @field_validator("earn_rates")
    @classmethod
    def _iso_codes(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        try:
            return {validate_currency(k): v for k, v in value.items()}
        except CrmInvalidInputError as exc:  # a config error must surface as a ValidationError
            raise ValueError(exc.detail) from exc

    @model_validator(mode="after")
    def _tiers_ordered(self) -> LoyaltyProgram:
        thresholds = [t.threshold for t in self.tiers]
        if not self.tiers or thresholds[0] != 0 or thresholds != sorted(set(thresholds)):
            raise ValueError("tiers must start at threshold 0 and strictly increase")
        return self

    def tier_for(self, qualifying: int) -> str:
        """The highest tier whose threshold `qualifying` reaches."""
        return [t.name for t in self.tiers if qualifying >= t.threshold][-1]

    def tier_rank(self, name: str) -> int:
        """Position of a tier (unknown tiers rank lowest)."""
        names = [t.name for t in self.tiers]
        return names.index(name) if name in names else -1
