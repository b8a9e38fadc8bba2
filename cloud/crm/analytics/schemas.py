"""Request and response models of behavioural analysis (funnels, retention, paths, trends)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

#: The longest period one query may cover (bounds the rows a single request scans).
MAX_PERIOD = timedelta(days=366)


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a validator, not a schema pattern (fuzzers generate
    # strings from patterns slowly)
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Scalar = Annotated[str, Field(max_length=500), AfterValidator(_no_nul)] | int | float | bool


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PropertyFilter(_Model):
    """One condition on an event property (`properties->property`)."""

    property: Name = Field(description="Top-level property key.")
    op: Literal["eq", "neq", "in", "gt", "gte", "lt", "lte", "exists"] = Field(
        "eq", description="eq/neq/in compare JSON values; gt..lte need a JSON number."
    )
    value: Scalar | list[Scalar] | None = Field(
        None, description="A JSON scalar; a list of 1-50 scalars for `in`; nothing for exists."
    )

    @model_validator(mode="after")
    def _value_fits_op(self) -> PropertyFilter:
        if self.op == "exists":
            if self.value is not None:
                raise ValueError("exists takes no value")
        elif self.op == "in":
            if not isinstance(self.value, list) or not 1 <= len(self.value) <= 50:
                raise ValueError("in takes a list of 1 to 50 values")
        elif self.op in ("gt", "gte", "lt", "lte"):
            if isinstance(self.value, bool) or not isinstance(self.value, int | float):
                raise ValueError(f"{self.op} takes a number")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"{self.op} takes one JSON scalar")
        return self


class EventMatcher(_Model):
    """An event name and the property conditions (all must hold) an event must meet."""

    event: Name = Field(description="Event name (crm_events.event).")
    filters: list[PropertyFilter] = Field(default_factory=list, max_length=10)


class Period(_Model):
    """A half-open period [start, end) of at most 366 days."""

    start: AwareDatetime = Field(description="Period start (inclusive), with an offset.")
    end: AwareDatetime = Field(description="Period end (exclusive), with an offset.")

    @model_validator(mode="after")
    def _bounded(self) -> Period:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_PERIOD:
            raise ValueError("the period may span at most 366 days")
        if self.start.year < 1970 or self.end.year > 9000:
            raise ValueError("the period must lie between 1970 and 9000")
        return self


class FunnelQuery(Period):
    """A funnel: people whose step-1 event falls in the period, followed within the window."""

    steps: list[EventMatcher] = Field(min_length=2, max_length=8)
    window_seconds: int = Field(
        30 * 86400, ge=1, le=90 * 86400, description="Conversion window from the step-1 event."
    )
    order: Literal["strict", "any"] = Field(
        "strict", description="strict: steps in the given order; any: in any order."
    )
    breakdown: Name | None = Field(
        None, description="Property of the person's first step-1 event to group by."
    )


class DropoffQuery(FunnelQuery):
    """Who reached `step` (1-based) of a funnel and not the next one."""

    step: int = Field(ge=1, le=7, description="The last step the people listed reached.")
    limit: int = Field(100, ge=1, le=1000)

    @model_validator(mode="after")
    def _step_in_funnel(self) -> DropoffQuery:
        if self.step >= len(self.steps):
            raise ValueError("step must be before the last step")
        return self


class Person(_Model):
    """A person as analytics counts them: a (resolved) profile, or an anonymous id."""

    profile_id: int | None
    anonymous_id: str | None


class ConversionTimes(_Model):
    """Distribution of the time to convert (first to last step), in seconds."""

    count: int
    p25: float | None
    median: float | None
    p75: float | None
    p90: float | None
    histogram: list[TimeBucket]


class TimeBucket(_Model):
    """People who converted within `upto_seconds` (and above the previous bucket)."""

    upto_seconds: int
    count: int


class FunnelStepResult(_Model):
    """People who reached a step, and the share of the first step and of the previous one."""

    step: int
    event: str
    count: int
    conversion_from_first: float
    conversion_from_previous: float


class FunnelGroup(_Model):
    """A funnel for one breakdown value (or everyone, with `breakdown_value` null)."""

    breakdown_value: str | None
    steps: list[FunnelStepResult]
    time_to_convert: ConversionTimes


class FunnelResult(_Model):
    """The whole funnel, and one group per breakdown value when a breakdown was asked."""

    total: FunnelGroup
    breakdown: list[FunnelGroup]


class DropoffResult(_Model):
    """People who reached `step` and not the next, in person order; `truncated` if more."""

    step: int
    people: list[Person]
    truncated: bool


class RetentionQuery(Period):
    """Cohorts of people by their first `start_event`, and how they come back."""

    start_event: EventMatcher | None = Field(None, description="Null: any event.")
    return_event: EventMatcher | None = Field(None, description="Null: any event.")
    cohort: Literal["week", "month"] = Field("week", description="Cohort size (UTC).")
    unit: Literal["day", "week"] = Field("day", description="The unit of N (elapsed time).")
    periods: int = Field(14, ge=1, le=90, description="N runs from 0 to periods - 1.")
    revenue: Literal["none", "events", "transactions", "both"] = Field(
        "none", description="Revenue per cohort and N: crm_events.revenue and/or POS sales."
    )
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = Field(
        "EUR", description="Only transactions in this currency count."
    )


class RetentionCell(_Model):
    """Of a cohort: who came back in period N, in N or later, and revenue in period N."""

    n: int
    retained: int
    retained_unbounded: int
    revenue: str


class Cohort(_Model):
    """People whose first start event fell in the cohort starting at `start`."""

    start: datetime
    size: int
    periods: list[RetentionCell]


class RetentionResult(_Model):
    """Cohorts in time order."""

    cohorts: list[Cohort]


class PathQuery(Period):
    """The events after (or before) each person's first `event` in the period."""

    event: EventMatcher
    direction: Literal["after", "before"] = "after"
    depth: int = Field(3, ge=1, le=5, description="How many events each sequence holds.")
    limit: int = Field(10, ge=1, le=100, description="How many sequences to return.")


class PathCount(_Model):
    """A sequence of event names and how many people followed it (shorter: history ended)."""

    events: list[str]
    people: int


class PathResult(_Model):
    """The most frequent sequences, most people first; `people` is everyone with the event."""

    people: int
    paths: list[PathCount]


class TrendQuery(Period):
    """Counts of one event per UTC day, week or month."""

    event: EventMatcher
    interval: Literal["day", "week", "month"] = "day"
    measure: Literal["events", "people"] = "events"
    breakdown: Name | None = None
    breakdown_limit: int = Field(10, ge=1, le=50, description="Top values; the rest are 'other'.")


class TrendPoint(_Model):
    """One bucket of a series."""

    start: datetime
    value: int


class TrendSeries(_Model):
    """One series: everyone, or a breakdown value (`other`: values past the limit)."""

    breakdown_value: str | None
    other: bool
    total: int
    points: list[TrendPoint]


class TrendResult(_Model):
    """Series, largest total first; buckets without events are left out."""

    series: list[TrendSeries]


ConversionTimes.model_rebuild()
