"""Behavioural analysis for marketers: /v1/analytics/{funnels,retention,paths,trends}.

The queries are read-only; they are POSTs because a funnel's steps and filters do not fit a
query string. A query that runs past the statement timeout answers 503 (narrow the period).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg
from fastapi import APIRouter

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.problems import READ_ONLY, problem_responses
from cloud.core.errors import CloudError
from cloud.crm.analytics import funnels, paths, retention, trends
from cloud.crm.analytics.schemas import (
    DropoffQuery,
    DropoffResult,
    FunnelQuery,
    FunnelResult,
    PathQuery,
    PathResult,
    RetentionQuery,
    RetentionResult,
    TrendQuery,
    TrendResult,
)

router = APIRouter(prefix="/v1/analytics", tags=["analytics"], responses=problem_responses(503))
R = TypeVar("R")


class AnalysisTooSlowError(CloudError):
    """The analysis ran past the statement timeout."""

    status = 503
    slug = "analysis-timeout"
    title = "Analysis took too long"


def _run(fn: Callable[[], R]) -> R:
    try:
        return fn()
    except psycopg.errors.QueryCanceled as exc:
        raise AnalysisTooSlowError(
            "the analysis ran past its time limit; narrow the period or the steps"
        ) from exc


@router.post(
    "/funnels",
    summary="Funnel: people per step, conversion, time to convert",
    openapi_extra=READ_ONLY,
)
def funnel(body: FunnelQuery, conn: ConnDep, _: MarketerDep) -> FunnelResult:
    """A property a step filters on or the breakdown names must be known (422 otherwise)."""
    return _run(lambda: funnels.funnel(conn, body))


@router.post(
    "/funnels/dropoffs",
    summary="Who reached a funnel step and not the next",
    openapi_extra=READ_ONLY,
)
def funnel_dropoffs(body: DropoffQuery, conn: ConnDep, _: MarketerDep) -> DropoffResult:
    """People in profile-id order (anonymous ids after), at most `limit`."""
    return _run(lambda: funnels.dropoffs(conn, body))


@router.post(
    "/retention", summary="Retention and revenue cohorts by first event", openapi_extra=READ_ONLY
)
def retention_cohorts(body: RetentionQuery, conn: ConnDep, _: MarketerDep) -> RetentionResult:
    """N-period and unbounded retention per weekly or monthly cohort, with revenue."""
    return _run(lambda: retention.retention(conn, body))


@router.post(
    "/paths",
    summary="Most frequent event sequences after or before an event",
    openapi_extra=READ_ONLY,
)
def event_paths(body: PathQuery, conn: ConnDep, _: MarketerDep) -> PathResult:
    """One sequence per person, from their first matching event in the period."""
    return _run(lambda: paths.paths(conn, body))


@router.post("/trends", summary="Events or people per day, week or month", openapi_extra=READ_ONLY)
def event_trends(body: TrendQuery, conn: ConnDep, _: MarketerDep) -> TrendResult:
    """One series, or one per top breakdown value plus 'other'."""
    return _run(lambda: trends.trends(conn, body))
