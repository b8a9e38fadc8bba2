"""Request and response bodies of the attribution API."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Campaign = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("1e11"), max_digits=20, decimal_places=6)]


class Credit(BaseModel):
    """What one channel or campaign is credited with."""

    key: str = Field(description="The channel or campaign.")
    conversions: float = Field(description="Conversions credited (fractions across touches).")
    revenue: float = Field(description="Revenue credited, in the report's currency.")


class ModelCredits(BaseModel):
    """One model's credits; the Markov model adds its removal effects."""

    model: str = Field(description="The attribution model.")
    credits: list[Credit] = Field(description="Credits by key; they sum to the attributed total.")
    removal_effects: dict[str, float] | None = Field(
        default=None, description="Markov: share of conversions lost without each key."
    )
    conversion_probability: float | None = Field(
        default=None, description="Markov: P(conversion) of a journey in the fitted chain."
    )


class AttributionReport(BaseModel):
    """Conversions in a period credited to the touches before them."""

    model_config = ConfigDict(populate_by_name=True)
    start: datetime = Field(alias="from", description="Range start.")
    end: datetime = Field(alias="to", description="Range end (exclusive).")
    by: str = Field(description="channel or campaign.")
    currency: str = Field(description="Currency of the revenue figures.")
    lookback_days: int = Field(description="Touches this long before a conversion count.")
    conversions: int = Field(description="Sales in the range.")
    revenue: float = Field(description="Their revenue.")
    direct_conversions: int = Field(description="Sales with no touch in the lookback window.")
    direct_revenue: float = Field(description="Their revenue (not attributed).")
    journeys_without_conversion: int = Field(description="Touch sequences that did not convert.")
    models: list[ModelCredits] = Field(description="One entry per requested model.")


class CostUpsert(BaseModel):
    """A campaign's cost inputs."""

    model_config = ConfigDict(extra="forbid")
    currency: Currency
    cost_per_message: Money = Field(default=Decimal(0), description="Cost of each message sent.")
    fixed_cost: Money = Field(default=Decimal(0), description="Creative, media, staff...")
    budget: Money | None = Field(default=None, description="Spend limit, flagged when passed.")


class CostPublic(BaseModel):
    """A campaign's stored cost inputs."""

    campaign: str
    currency: str
    cost_per_message: Decimal
    fixed_cost: Decimal
    budget: Decimal | None
    updated_at: datetime


class HoldoutImport(BaseModel):
    """Who received a campaign and who was held out of it."""

    model_config = ConfigDict(extra="forbid")
    treated: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(max_length=100_000)
    held_out: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(max_length=100_000)


class HoldoutResult(BaseModel):
    """How many assignments were recorded (people already assigned keep theirs)."""

    recorded: int


class CampaignRoi(BaseModel):
    """One campaign's cost against its revenue."""

    campaign: str
    messages_sent: int
    cost: float = Field(description="fixed_cost + cost_per_message x messages sent.")
    cost_currency: str | None = Field(description="Currency of the cost inputs (none: no costs).")
    budget: float | None
    over_budget: bool
    attributed_revenue: float = Field(description="Revenue credited by the chosen model.")
    incremental_revenue: float | None = Field(
        description="(Revenue per treated - per held-out person) x treated, where a holdout exists."
    )
    basis: str = Field(description="holdout (measured increment) or attribution.")
    roas: float | None = Field(description="Revenue on the basis / cost.")
    roi: float | None = Field(description="(Revenue on the basis - cost) / cost.")


class RoiReport(BaseModel):
    """ROI of every campaign with messages, costs, credits or a holdout in the range."""

    model_config = ConfigDict(populate_by_name=True)
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    model: str
    currency: str
    campaigns: list[CampaignRoi]


class ConversionPoint(BaseModel):
    """One hour or local day of a store."""

    start: datetime = Field(description="Bucket start, store local time.")
    visitors: int = Field(description="People counted in through the entrances.")
    transactions: int = Field(description="POS sales.")
    sales: float
    conversion_rate: float | None = Field(description="transactions / visitors.")
    sales_per_visitor: float | None
    average_basket: float | None


class StoreConversion(BaseModel):
    """Footfall joined with POS sales: how many visitors bought, and for how much."""

    model_config = ConfigDict(populate_by_name=True)
    store_id: str
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    bucket: str
    currency: str
    visitors: int
    transactions: int
    sales: float
    conversion_rate: float | None
    sales_per_visitor: float | None
    average_basket: float | None
    points: list[ConversionPoint]


class ForecastPoint(BaseModel):
    """One forecast day."""

    day: date
    revenue: float = Field(description="Expected revenue.")
    lower: float = Field(description="Lower bound of the interval.")
    upper: float = Field(description="Upper bound of the interval.")


class RevenueForecast(BaseModel):
    """Daily revenue forecast of the chain or of a segment's current members."""

    segment_id: int | None
    currency: str
    model: str = Field(description="The structural time-series model fitted.")
    interval_level: float = Field(description="Coverage the intervals aim at.")
    history_revenue: float = Field(description="Revenue over the history used.")
    forecast_revenue: float = Field(description="Expected revenue over the horizon.")
    points: list[ForecastPoint]
