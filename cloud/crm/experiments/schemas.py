"""Request and response bodies of the experiments API; the design is stored as validated JSON."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud.api.schemas.limits import PG_BIGINT_MAX

Key = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$", description="Stable key.")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
Text = Annotated[str, Field(max_length=2_000, pattern=r"^[^\x00]*$")]
EventName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
PropertyName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_$][A-Za-z0-9_$.-]{0,99}$")]
ProfileId = Annotated[int, Field(ge=1, le=PG_BIGINT_MAX)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
#: Weights may round (1/3): GrowthBook's SDKs accept a sum within 0.99 and 1.01; we ask 1e-6.
WEIGHT_TOLERANCE = 1e-6


class Variant(BaseModel):
    """One arm; the first variant is control."""

    model_config = ConfigDict(extra="forbid")

    key: Key
    name: Text = ""
    weight: Probability = Field(description="Share of traffic; the weights sum to 1.")


class Measure(BaseModel):
    """A per-customer value within the metric's window after first exposure."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["conversion", "count", "sum", "revenue"] = Field(
        description="`conversion`: did the event happen (0/1); `count`: how many times;"
        " `sum`: the sum of a numeric property; `revenue`: POS transactions (sales less"
        " returns)."
    )
    event: EventName | None = Field(default=None, description="Event name (not for revenue).")
    property: PropertyName | None = Field(default=None, description="Property summed (sum).")

    @model_validator(mode="after")
    def _fields(self) -> Measure:
        if self.kind == "revenue":
            if self.event is not None or self.property is not None:
                raise ValueError("a revenue measure takes no event or property")
        elif self.event is None:
            raise ValueError(f"a {self.kind} measure needs `event`")
        if (self.kind == "sum") != (self.property is not None):
            raise ValueError("`property` is needed by, and only by, a sum measure")
        return self


class Metric(BaseModel):
    """A metric: one measure per customer, or a ratio of two (sum of numerators over sum of
    denominators, e.g. revenue per store visit)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Literal["conversion", "count", "sum", "revenue", "ratio"]
    event: EventName | None = None
    property: PropertyName | None = None
    numerator: Measure | None = Field(default=None, description="Ratio metrics only.")
    denominator: Measure | None = Field(default=None, description="Ratio metrics only.")
    window_hours: int = Field(default=168, ge=1, le=8_784, description="After first exposure.")
    inverse: bool = Field(default=False, description="Lower is better (e.g. returns).")

    @model_validator(mode="after")
    def _shape(self) -> Metric:
        if self.kind == "ratio":
            if self.numerator is None or self.denominator is None:
                raise ValueError("a ratio metric needs `numerator` and `denominator`")
            if self.event is not None or self.property is not None:
                raise ValueError("a ratio metric takes event/property in its measures")
        else:
            if self.numerator is not None or self.denominator is not None:
                raise ValueError("only a ratio metric has `numerator`/`denominator`")
            Measure(kind=self.kind, event=self.event, property=self.property)
        return self

    def measures(self) -> list[tuple[str, Measure]]:
        """(field path, measure) of each measure of the metric."""
        if self.kind == "ratio":
            assert self.numerator is not None and self.denominator is not None
            return [("numerator", self.numerator), ("denominator", self.denominator)]
        return [("", Measure(kind=self.kind, event=self.event, property=self.property))]


class Namespace(BaseModel):
    """A mutually exclusive layer: experiments of one namespace with disjoint ranges never
    share a customer (GrowthBook's `inNamespace`)."""

    model_config = ConfigDict(extra="forbid")

    name: Key
    start: Probability
    end: Probability

    @model_validator(mode="after")
    def _range(self) -> Namespace:
        if self.start >= self.end:
            raise ValueError("`start` must be below `end`")
        return self


class Analysis(BaseModel):
    """How results are computed."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["frequentist", "bayesian"] = "frequentist"
    alpha: float = Field(default=0.05, gt=0, lt=0.5, allow_inf_nan=False)
    difference: Literal["relative", "absolute"] = "relative"
    sequential: bool = Field(default=False, description="Always-valid intervals (peeking ok).")
    sequential_tuning: int = Field(default=5000, ge=10, le=10**9)
    cuped: bool = Field(default=False, description="Pre-period covariate adjustment.")
    correction: Literal["holm", "bh", "none"] = "holm"
    prior_variance: float | None = Field(default=None, gt=0, le=1e6, allow_inf_nan=False)


class AutomationSource(BaseModel):
    """Analyse the A/B split node of an automation workflow (table
    automation_split_assignments); its branch names are the variant keys."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["automation_split"]
    workflow_id: ProfileId
    node_id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class Design(BaseModel):
    """Everything about an experiment but its name and state."""

    model_config = ConfigDict(extra="forbid")

    variants: list[Variant] = Field(min_length=2, max_length=20)
    coverage: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)
    hash_version: Literal[1, 2] = 2
    seed: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    segment_id: ProfileId | None = Field(default=None, description="Only members take part.")
    namespace: Namespace | None = None
    holdout: float = Field(default=0.0, ge=0, le=0.5, allow_inf_nan=False)
    stratify_by: Literal["store_id", "tier"] | None = None
    primary_metric: Metric
    guardrails: list[Metric] = Field(default_factory=list, max_length=10)
    analysis: Analysis = Field(default_factory=Analysis)
    source: AutomationSource | None = None

    @field_validator("variants")
    @classmethod
    def _weights(cls, v: list[Variant]) -> list[Variant]:
        total = math.fsum(x.weight for x in v)
        if abs(total - 1) > WEIGHT_TOLERANCE:
            raise ValueError(f"the variants' weights must sum to 1, they sum to {total:g}")
        if len({x.key for x in v}) != len(v):
            raise ValueError("variant keys must be unique")
        return v


class ExperimentCreate(Design):
    """A new experiment (draft)."""

    key: Key
    name: Name
    description: Text = ""


class ExperimentUpdate(BaseModel):
    """Name and description change any time; the design only while a draft."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Text | None = None
    design: Design | None = None


class ExperimentPublic(BaseModel):
    """An experiment."""

    id: int
    key: str
    name: str
    description: str
    status: Literal["draft", "running", "stopped"]
    design: Design
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None


class AssignAttributes(BaseModel):
    """Attributes for stratification (else the profile's attributes are read)."""

    model_config = ConfigDict(extra="forbid")

    store_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")] | None = (
        None
    )
    tier: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")] | None = None


class AssignRequest(BaseModel):
    """Who to assign."""

    model_config = ConfigDict(extra="forbid")

    profile_id: ProfileId
    attributes: AssignAttributes = Field(default_factory=AssignAttributes)


class AssignPublic(BaseModel):
    """Where the customer falls; `variant` null means control's experience, not analysed."""

    experiment_id: int
    profile_id: int
    in_experiment: bool
    variant: int | None
    variant_key: str | None
    reason: str = Field(
        description="hashed, stratified, sticky, holdout, targeting, coverage, namespace"
    )
    bucket: float | None


class SampleSizeRequest(BaseModel):
    """Power analysis: give `mde` for the sample size, or `sample_size_per_variant` for the MDE."""

    model_config = ConfigDict(extra="forbid")

    metric_type: Literal["proportion", "mean"]
    baseline: float = Field(allow_inf_nan=False, description="Baseline rate or mean.")
    std_dev: float | None = Field(default=None, gt=0, le=1e12, allow_inf_nan=False)
    mde: float | None = Field(
        default=None, gt=0, le=10, allow_inf_nan=False, description="Relative."
    )
    sample_size_per_variant: int | None = Field(default=None, ge=2, le=10**10)
    alpha: float = Field(default=0.05, gt=0, lt=0.5, allow_inf_nan=False)
    power: float = Field(default=0.8, gt=0.05, lt=1, allow_inf_nan=False)
    variants: int = Field(default=2, ge=2, le=20)
    daily_traffic: int | None = Field(default=None, ge=1, le=10**10)

    @model_validator(mode="after")
    def _one(self) -> SampleSizeRequest:
        if (self.mde is None) == (self.sample_size_per_variant is None):
            raise ValueError("give exactly one of `mde` and `sample_size_per_variant`")
        if self.metric_type == "proportion" and not 0 < self.baseline < 1:
            raise ValueError("a proportion's baseline is between 0 and 1")
        if self.metric_type == "mean" and (self.std_dev is None or self.baseline == 0):
            raise ValueError("a mean needs `std_dev` and a non-zero baseline")
        return self


class SampleSizePublic(BaseModel):
    """The answer of the calculator."""

    per_variant: int
    total: int
    mde: float = Field(description="Relative minimum detectable effect.")
    mde_absolute: float
    effect_size: float = Field(description="Cohen's h (proportions) or d (means).")
    days: int | None


class SnapshotPublic(BaseModel):
    """One day's stored results."""

    day: date
    taken_at: datetime
    results: dict[str, object]
