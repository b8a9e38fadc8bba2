"""Schemas of the predictive API: customer predictions, at-risk lists, model status, forecasts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

SegmentName = Literal["new", "active", "at_risk", "lapsed"]


class ActionPublic(BaseModel):
    """A suggested intervention."""

    kind: Literal["offer", "points_bonus", "message", "none"] = Field(description="Kind.")
    name: str = Field(description="What to do.")
    rule: str = Field(description="The rule that chose it.")
    reason: str = Field(description="Why, in words.")


class CustomerPredictionPublic(BaseModel):
    """Churn, value, health and next best action of one customer."""

    customer_id: str = Field(description="Customer (CRM profile) id.")
    store_id: str | None = Field(description="Home store: where the customer buys most.")
    segment: SegmentName = Field(description="Lifecycle segment.")
    churn_probability: float = Field(description="P(no purchase within the churn horizon).")
    p_alive: float | None = Field(description="BG/NBD probability the customer is still active.")
    expected_purchases: float | None = Field(description="BG/NBD expected purchases in horizon.")
    expected_spend: float | None = Field(description="Gamma-Gamma expected value per purchase.")
    clv: float | None = Field(description="Expected value over the CLV horizon (undiscounted).")
    engagement: float = Field(description="0-1 index of recent visits, opens and purchases.")
    health_score: float = Field(description="0-100: churn risk, value and engagement combined.")
    risk_value: float = Field(description="churn_probability x CLV: value at risk.")
    reasons: list[str] = Field(description="Why the scores are what they are.")
    action: ActionPublic = Field(description="Next best action.")
    model_version: int = Field(description="Churn model version that scored.")
    as_of: datetime = Field(description="Time the scores refer to (the model clock).")


class AtRiskPublic(CustomerPredictionPublic):
    """A stored score in an at-risk list."""

    scored_at: datetime = Field(description="When the score was computed.")


class AtRiskList(BaseModel):
    """Customers ranked by value at risk."""

    items: list[AtRiskPublic] = Field(description="Ranked customers.")
    limit: int = Field(description="Page size.")
    offset: int = Field(description="Offset of the page.")


class DriftEventPublic(BaseModel):
    """A drift (or manual reset) of a model."""

    version: int = Field(description="Model version saved with the event.")
    sample: int = Field(description="Samples seen when it happened.")
    clock: datetime | None = Field(description="Model clock (event time) then.")
    error_before: float | None = Field(description="Mean absolute error before; null: reset.")
    reset: bool = Field(description="Whether the model was reset.")
    detected_at: datetime = Field(description="Wall-clock time of detection.")


class ModelVersionPublic(BaseModel):
    """A retained model version."""

    version: int = Field(description="Version.")
    samples_seen: int = Field(description="Samples learnt by then.")
    metrics: dict[str, Any] = Field(description="Metrics at that version.")
    created_at: datetime = Field(description="When saved.")


class ModelSummaryPublic(BaseModel):
    """Headline numbers of a model."""

    name: str = Field(description="Model name.")
    kind: str = Field(description="Model kind.")
    version: int = Field(description="Current version.")
    samples_seen: int = Field(description="Labelled samples learnt (churn) or windows (footfall).")
    metrics: dict[str, Any] = Field(description="Current progressive metrics.")
    clock: datetime | None = Field(description="Latest event time learnt.")
    updated_at: datetime = Field(description="When the current version was saved.")


class ModelStatusPublic(ModelSummaryPublic):
    """Full status of a model."""

    watermarks: dict[str, int] = Field(description="Last source row id consumed, per source.")
    customers: int = Field(description="Customers with state in this model.")
    drift_events_total: int = Field(description="Drift events so far.")
    drift_events: list[DriftEventPublic] = Field(description="Most recent drift events.")
    versions: list[ModelVersionPublic] = Field(description="Most recent retained versions.")


class ForecastPointPublic(BaseModel):
    """One forecast bucket."""

    bucket_start: datetime = Field(description="Start of the hour.")
    expected: float = Field(description="Expected people in.")


class FootfallForecastPublic(BaseModel):
    """Short-horizon hourly footfall forecast of a store."""

    store_id: str = Field(description="Store id.")
    model: str = Field(description="Forecasting model.")
    trained_until: datetime | None = Field(description="Last hour learnt.")
    points: list[ForecastPointPublic] = Field(description="Forecast, hour by hour.")


class AnomalyPublic(BaseModel):
    """A scored footfall hour."""

    bucket_start: datetime = Field(description="Start of the hour.")
    observed: float = Field(description="People in.")
    expected: float | None = Field(description="What the model expected.")
    score: float = Field(description="Anomaly score 0-1.")
    is_anomaly: bool = Field(description="Score above the threshold.")


class AnomalyList(BaseModel):
    """Scored footfall hours of a store."""

    store_id: str = Field(description="Store id.")
    items: list[AnomalyPublic] = Field(description="Hours, newest first.")
