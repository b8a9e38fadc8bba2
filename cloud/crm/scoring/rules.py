"""A scoring programme's configuration (validated; a bad field is a 422 naming it) and the pure
matching of events and profile attributes against its rules.

Filter semantics (the SQL compiler in `compiler.py` gives the same answers, proven by a
hypothesis test against this module):

- `eq` / `in`: the property is present and equal (JSON equality; `true` is not `1`) to the value
  / to one of the values; `ne`: absent or not equal.
- `gt`, `gte`, `lt`, `lte`: the property is a JSON number compared with a number.
- `exists`: the property is present (even when null).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

Key = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="A rule's slug.")]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
Scalar = Annotated[str, Field(max_length=256, pattern=r"^[^\x00]*$")] | float | bool
Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists"]
NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte"})
#: The once-only rules' counter day.
ONCE_DAY = 0


class Filter(BaseModel):
    """A condition on one event property (or profile attribute)."""

    model_config = ConfigDict(extra="forbid")

    property: Name = Field(description="Top-level key of the event's properties.")
    op: Op = Field(description="Comparison (see docs/scoring.md).")
    value: Scalar | Annotated[list[Scalar], Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="A number for gt/gte/lt/lte, a list for in, none for exists."
    )

    @model_validator(mode="after")
    def _value_fits_op(self) -> Self:
        v = self.value
        if self.op == "exists":
            if v is not None:
                raise ValueError("value: 'exists' takes no value")
        elif self.op == "in":
            if not isinstance(v, list):
                raise ValueError("value: 'in' needs a list of values")
        elif self.op in NUMERIC_OPS:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"value: '{self.op}' needs a finite number")
        elif v is None or isinstance(v, list):
            raise ValueError(f"value: '{self.op}' needs one string, number or boolean")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("value: must be finite")
        return self


Points = Annotated[float, Field(ge=-1000, le=1000, allow_inf_nan=False)]


class BehaviourRule(BaseModel):
    """An event (with property filters) gives points, once or repeatedly up to a daily cap."""

    model_config = ConfigDict(extra="forbid")

    key: Key
    event: Name = Field(description="Event name (crm_events.event) this rule scores.")
    filters: Annotated[list[Filter], Field(max_length=20)] = []
    points: Points = Field(description="Points per matching event (negative ones subtract).")
    repeat: Literal["once", "repeatable"] = "repeatable"
    daily_cap: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] | None = Field(
        default=None, description="Most points (absolute) this rule gives a profile per UTC day."
    )

    @model_validator(mode="after")
    def _nonzero(self) -> Self:
        if self.points == 0:
            raise ValueError("points: must not be 0")
        return self


class FitRule(BaseModel):
    """A profile attribute condition that adds (or removes) fit points."""

    model_config = ConfigDict(extra="forbid")

    key: Key
    filter: Filter
    points: Points


class FitConfig(BaseModel):
    """Fit: profile completeness plus attribute rules, clipped to 0-100."""

    model_config = ConfigDict(extra="forbid")

    completeness_fields: Annotated[list[Name], Field(max_length=50)] = [
        "email",
        "phone",
        "first_name",
        "last_name",
        "city",
    ]
    completeness_points: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 40.0
    rules: Annotated[list[FitRule], Field(max_length=100)] = []


class PredictiveConfig(BaseModel):
    """What conversion means and how the delayed-label model samples the stream."""

    model_config = ConfigDict(extra="forbid")

    horizon_days: Annotated[float, Field(ge=1, le=365, allow_inf_nan=False)] = 30.0
    snapshot_every_days: Annotated[float, Field(ge=0.5, le=90, allow_inf_nan=False)] = 7.0
    max_idle_snapshots: Annotated[int, Field(ge=0, le=52)] = Field(
        default=4, description="Snapshots taken every snapshot_every_days while a profile is idle."
    )
    conversion_events: Annotated[list[Name], Field(max_length=20)] = ["purchase"]
    purchases_convert: bool = Field(default=True, description="A POS sale is a conversion.")


class Weights(BaseModel):
    """Weights of the three parts in the combined score (normalised by their sum)."""

    model_config = ConfigDict(extra="forbid")

    behaviour: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.5
    fit: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.2
    predictive: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.3

    @model_validator(mode="after")
    def _some(self) -> Self:
        if self.behaviour + self.fit + self.predictive <= 0:
            raise ValueError("weights: at least one weight must be above 0")
        return self


class Thresholds(BaseModel):
    """MQL and SQL thresholds on the combined score; a level is left only `hysteresis` below."""

    model_config = ConfigDict(extra="forbid")

    mql: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 50.0
    sql: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 75.0
    hysteresis: Annotated[float, Field(ge=0, le=50, allow_inf_nan=False)] = 5.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.sql <= self.mql:
            raise ValueError("sql: must be above mql")
        if self.hysteresis >= self.mql:
            raise ValueError("hysteresis: must be below mql")
        return self


class ProgrammeConfig(BaseModel):
    """Everything a scoring programme is: rules, decay, fit, prediction, weights, thresholds."""

    model_config = ConfigDict(extra="forbid")

    behaviour_rules: Annotated[list[BehaviourRule], Field(max_length=200)] = []
    half_life_days: Annotated[float, Field(ge=0.1, le=3650, allow_inf_nan=False)] = 30.0
    behaviour_max_points: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)] = 100.0
    fit: FitConfig = FitConfig()
    predictive: PredictiveConfig = PredictiveConfig()
    weights: Weights = Weights()
    thresholds: Thresholds = Thresholds()

    @model_validator(mode="after")
    def _unique_keys(self) -> Self:
        for what, keys in (
            ("behaviour_rules", [r.key for r in self.behaviour_rules]),
            ("fit.rules", [r.key for r in self.fit.rules]),
        ):
            dup = {k for k in keys if keys.count(k) > 1}
            if dup:
                raise ValueError(f"{what}: duplicate key(s) {sorted(dup)}")
        return self

    @property
    def half_life_s(self) -> float:
        """Half-life in seconds."""
        return self.half_life_days * 86400.0


def _json_eq(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def filter_matches(f: Filter, props: Mapping[str, JsonValue]) -> bool:
    """Whether one filter holds for a property map (see the module docstring)."""
    present = f.property in props
    got = props.get(f.property)
    if f.op == "exists":
        return present
    if f.op == "ne":
        return not (present and _json_eq(got, f.value))
    if not present:
        return False
    if f.op == "eq":
        return _json_eq(got, f.value)
    if f.op == "in":
        assert isinstance(f.value, list)
        return any(_json_eq(got, v) for v in f.value)
    if not _is_number(got):
        return False
    x, v = float(got), float(f.value)  # type: ignore[arg-type]
    return {"gt": x > v, "gte": x >= v, "lt": x < v, "lte": x <= v}[f.op]


def rule_matches(rule: BehaviourRule, event: str | None, props: Mapping[str, JsonValue]) -> bool:
    """Whether an event is one the rule scores."""
    return event == rule.event and all(filter_matches(f, props) for f in rule.filters)


def award(rule: BehaviourRule, used: float) -> float:
    """Points the next matching event gives when `used` (absolute) points were given already
    today (for a once-only rule: ever); 0 when the cap or the once-rule is spent."""
    size = abs(rule.points)
    if rule.repeat == "once":
        room = size - used
    else:
        room = (rule.daily_cap if rule.daily_cap is not None else math.inf) - used
    got = max(0.0, min(size, room))
    return math.copysign(got, rule.points) if got else 0.0


def decay(points: float, age_s: float, half_life_s: float) -> float:
    """`points` earned `age_s` seconds ago (a future event counts as now), at half-life."""
    factor: float = 2.0 ** (-max(0.0, age_s) / half_life_s)
    return points * factor


def utc_day(t: float) -> int:
    """Days since 1970-01-01 (UTC) of a POSIX time: the daily cap's day."""
    return int(t // 86400)
