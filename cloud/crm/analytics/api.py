"""Behavioural analysis for marketers: /v1/analytics/{funnels,retention,paths,trends}.

The queries are read-only; they are POSTs because a funnel's steps and filters do not fit a
query string. A query that runs past the statement timeout answers 503 (narrow the period).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi import APIRouter
from pydantic import BaseModel

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


class AnalysisTooSlowError(CloudError):
    """The analysis ran past the statement timeout."""

    status = 503
    slug = "analysis-timeout"
    title = "Analysis took too long"


@dataclass(frozen=True)
class _Analysis:
    """One read-only analysis route: its path, query and answer types, and the function."""

    path: str
    name: str  # the endpoint's name (the OpenAPI operation id is made from it)
    summary: str
    doc: str
    query: type[BaseModel]
    result: type[BaseModel]
    run: Callable[[psycopg.Connection[Any], Any], BaseModel]


ANALYSES = (
    _Analysis("/funnels", "funnel", "Funnel: people per step, conversion, time to convert",
              "A property a step filters on or the breakdown names must be known (422"
              " otherwise).", FunnelQuery, FunnelResult, funnels.funnel),
    _Analysis("/funnels/dropoffs", "funnel_dropoffs",
              "Who reached a funnel step and not the next",
              "People in profile-id order (anonymous ids after), at most `limit`.",
              DropoffQuery, DropoffResult, funnels.dropoffs),
    _Analysis("/retention", "retention_cohorts", "Retention and revenue cohorts by first event",
              "N-period and unbounded retention per weekly or monthly cohort, with revenue.",
              RetentionQuery, RetentionResult, retention.retention),
    _Analysis("/paths", "event_paths", "Most frequent event sequences after or before an event",
              "One sequence per person, from their first matching event in the period.",
              PathQuery, PathResult, paths.paths),
    _Analysis("/trends", "event_trends", "Events or people per day, week or month",
              "One series, or one per top breakdown value plus 'other'.",
              TrendQuery, TrendResult, trends.trends),
)  # fmt: skip


def _endpoint(a: _Analysis) -> Callable[..., BaseModel]:
    """The route function of one analysis: its body, a connection and a marketer; a query past
    the statement timeout is a 503."""

    def endpoint(body: Any, conn: Any, _: Any) -> BaseModel:
        try:
            return a.run(conn, body)
        except psycopg.errors.QueryCanceled as exc:
            raise AnalysisTooSlowError(
                "the analysis ran past its time limit; narrow the period or the steps"
            ) from exc

    # FastAPI reads the parameters' types from the annotations: set them per analysis
    endpoint.__annotations__ = {
        "body": a.query, "conn": ConnDep, "_": MarketerDep, "return": a.result,
    }  # fmt: skip
    endpoint.__name__ = endpoint.__qualname__ = a.name
    endpoint.__doc__ = a.doc
    return endpoint


for _a in ANALYSES:
    router.post(_a.path, summary=_a.summary, openapi_extra=READ_ONLY)(_endpoint(_a))
