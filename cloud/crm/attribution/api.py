"""Attribution, campaign costs and ROI for marketers; store conversion for store managers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from cloud.api.deps import ConnDep, MarketerDep, ViewerDep
from cloud.api.params import IsoAwareDatetime
from cloud.api.problems import problem_responses
from cloud.api.schemas.footfall_fleet import StoreId
from cloud.crm.attribution import schemas as s
from cloud.crm.attribution import service
from cloud.crm.attribution.journeys import Dimension
from cloud.crm.attribution.models import Model

router = APIRouter(tags=["attribution"])

FromQ = Annotated[
    IsoAwareDatetime | None, Query(alias="from", description="Range start; default 30 days ago.")
]
ToQ = Annotated[IsoAwareDatetime | None, Query(alias="to", description="Range end; default now.")]
LookbackQ = Annotated[
    int, Query(ge=1, le=365, description="Days before a conversion in which touches count.")
]
CurrencyQ = Annotated[
    str | None, Query(pattern=r"^[A-Z]{3}$", description="Sales currency (needed if several).")
]
CampaignP = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f/]+$")]


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    return start or end - timedelta(days=30), end


@router.get(
    "/v1/attribution",
    summary="Conversions credited to channels or campaigns",
    description="Sales in the range credited to the touches (touchpoints and sent marketing"
    " messages) in the lookback window before each, by every requested model. Credits of a model"
    " sum to the attributed conversions and revenue; sales with no touch are reported as direct.",
    responses=problem_responses(401, 403, 422),
)
def attribution(
    conn: ConnDep,
    _: MarketerDep,
    start: FromQ = None,
    end: ToQ = None,
    model: Annotated[list[Model] | None, Query(description="Models; default all.")] = None,
    by: Dimension = Dimension.CHANNEL,
    lookback_days: LookbackQ = 30,
    half_life_days: Annotated[float, Query(gt=0, le=365)] = 7.0,
    markov_order: Annotated[int, Query(ge=1, le=3)] = 1,
    currency: CurrencyQ = None,
) -> s.AttributionReport:
    lo, hi = _range(start, end)
    report = service.attribution(conn, start=lo, end=hi, models=model or list(Model), by=by,
                                 lookback_days=lookback_days, half_life_days=half_life_days,
                                 markov_order=markov_order, currency=currency)  # fmt: skip
    return s.AttributionReport.model_validate(report)


@router.put(
    "/v1/attribution/costs/{campaign}",
    summary="Set a campaign's cost inputs",
    responses=problem_responses(401, 403, 422),
)
def put_cost(
    campaign: CampaignP, body: s.CostUpsert, conn: ConnDep, principal: MarketerDep
) -> s.CostPublic:
    row = service.put_cost(conn, campaign=campaign, currency=body.currency,
                           cost_per_message=body.cost_per_message, fixed_cost=body.fixed_cost,
                           budget=body.budget, actor=principal.subject)  # fmt: skip
    return s.CostPublic.model_validate(row)


@router.post(
    "/v1/attribution/holdouts/{campaign}",
    summary="Record a campaign's treated and held-out people",
    responses=problem_responses(401, 403, 404, 422),
)
def record_holdout(
    campaign: CampaignP, body: s.HoldoutImport, conn: ConnDep, _: MarketerDep
) -> s.HoldoutResult:
    n = service.record_holdout(conn, campaign=campaign, treated=body.treated,
                               held_out=body.held_out)  # fmt: skip
    return s.HoldoutResult(recorded=n)


@router.get(
    "/v1/attribution/roi",
    summary="Cost, revenue, ROAS and ROI per campaign",
    description="A campaign with a holdout group is judged on its measured incremental revenue"
    " (basis `holdout`), which overrides attribution; the others on the chosen model's credit.",
    responses=problem_responses(401, 403, 422),
)
def roi(
    conn: ConnDep,
    _: MarketerDep,
    start: FromQ = None,
    end: ToQ = None,
    model: Model = Model.MARKOV,
    lookback_days: LookbackQ = 30,
    currency: CurrencyQ = None,
) -> s.RoiReport:
    lo, hi = _range(start, end)
    report = service.roi(conn, start=lo, end=hi, model=model, lookback_days=lookback_days,
                         currency=currency)  # fmt: skip
    return s.RoiReport.model_validate(report)


@router.get(
    "/v1/attribution/forecast",
    summary="Daily revenue forecast, chain-wide or for a segment",
    description="A structural time-series model (local level, weekly and, from two years of"
    " history, yearly seasonality) fitted to daily sales, with 90 % intervals; backtest in"
    " docs/attribution.md.",
    responses=problem_responses(401, 403, 404, 422),
)
def revenue_forecast(
    conn: ConnDep,
    _: MarketerDep,
    segment_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    history_days: Annotated[int, Query(ge=28, le=1100)] = 365,
    horizon_days: Annotated[int, Query(ge=1, le=365)] = 90,
    currency: CurrencyQ = None,
) -> s.RevenueForecast:
    report = service.revenue_forecast(conn, segment_id=segment_id, history_days=history_days,
                                      horizon_days=horizon_days, currency=currency,
                                      today=datetime.now(UTC).date())  # fmt: skip
    return s.RevenueForecast.model_validate(report)


@router.get(
    "/v1/stores/{store_id}/conversion",
    summary="Visitors, sales and conversion rate per hour or day",
    description="Entrance in-counts joined with the store's POS sales: conversion rate, sales per"
    " visitor and average basket, per hour or store-local day.",
    responses=problem_responses(401, 403, 404, 422),
)
def store_conversion(
    store_id: StoreId,
    conn: ConnDep,
    principal: ViewerDep,
    start: FromQ = None,
    end: ToQ = None,
    bucket: Literal["1h", "1d"] = "1d",
    currency: CurrencyQ = None,
) -> s.StoreConversion:
    principal.require_store(store_id)
    lo, hi = _range(start, end)
    report = service.store_conversion(conn, store_id=store_id, start=lo, end=hi, bucket=bucket,
                                      currency=currency)  # fmt: skip
    return s.StoreConversion.model_validate(report)
