"""The segment rule language: a JSON tree of conditions, discriminated on `type`.

Leaves test one person: a profile attribute, "did event E at least N times in the last D days"
(with property filters), a purchase aggregate (RFM), a prediction, a consent, a loyalty tier or
a store visited; `and`, `or` and `not` combine them. Names of attributes, event properties and
prediction fields come from registries (`KNOWN_ATTRIBUTES`...): an unknown name is refused with
an error that names it (see `unknown_names`). Rules compile to SQL in compiler.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte"]
#: Text PostgreSQL can hold: no NUL character (a text or jsonb value cannot contain one).
NO_NUL = r"^[^\x00]*$"
Text = Annotated[StrictStr, Field(max_length=200, pattern=NO_NUL)]
EventName = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=NO_NUL)]
StoreId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=NO_NUL)]
TierName = Annotated[StrictStr, Field(min_length=1, max_length=32, pattern=NO_NUL)]
Scalar = StrictBool | StrictInt | StrictFloat | Text
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Days = Annotated[int, Field(ge=1, le=3650, description="A window in days, up to 10 years.")]
MAX_LIST = 100

#: Profile attributes a rule may name (crm_profiles.attributes keys), with their JSON type.
KNOWN_ATTRIBUTES: dict[str, str] = {
    "first_name": "string",
    "last_name": "string",
    "country": "string",
    "city": "string",
    "gender": "string",
    "language": "string",
    "birth_year": "number",
    "email_domain": "string",
    "vip": "boolean",
}
#: Event properties a rule may filter on (beyond those a tracking plan declares for the event).
KNOWN_EVENT_PROPERTIES: frozenset[str] = frozenset(
    {"category", "sku", "product_id", "price", "quantity", "value", "currency", "campaign",
     "url", "path", "screen", "channel", "zone", "brand"}
)  # fmt: skip
PREDICTION_FIELDS = Literal["churn_probability", "clv", "health_score", "engagement"]
LIFECYCLE_STAGES = Literal["awareness", "consideration", "purchase", "retention", "advocacy"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class AttributeRule(_Rule):
    """A profile attribute compared with a value (`exists` tests presence)."""

    type: Literal["attribute"]
    attribute: Name = Field(description="A key of the profile's attributes (see the registry).")
    op: Op | Literal["exists", "in"] = Field(description="Comparison; `in` takes a list.")
    value: Scalar | Annotated[list[Scalar], Field(max_length=MAX_LIST)] | None = None


class LifecycleRule(_Rule):
    """The profile's lifecycle stage is one of these."""

    type: Literal["lifecycle"]
    stages: Annotated[list[LIFECYCLE_STAGES], Field(min_length=1, max_length=5)]


class PropertyFilter(_Rule):
    """An event property compared with a value."""

    property: Name
    op: Op = "eq"
    value: Scalar


class EventRule(_Rule):
    """Did `event` at least `min_count` times in the last `within_days` days."""

    type: Literal["event"]
    event: EventName
    min_count: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    within_days: Days = 30
    where: Annotated[list[PropertyFilter], Field(max_length=10)] = []
    store_id: StoreId | None = None


class PurchaseRule(_Rule):
    """A purchase aggregate (sales, not reversed) compared with a value: `count` (frequency),
    `total` (monetary), `days_since_last` (recency; no purchase at all never matches)."""

    type: Literal["purchases"]
    metric: Literal["count", "total", "days_since_last"]
    op: Op
    value: Annotated[float, Field(ge=0, le=1e12)]
    within_days: Days | None = None


class PredictionRule(_Rule):
    """A model score of the person (ml_customer_scores) compared with a value."""

    type: Literal["prediction"]
    field: PREDICTION_FIELDS
    op: Op
    value: Annotated[float, Field(ge=-1e12, le=1e12)]


class ConsentRule(_Rule):
    """The person's latest consent for a channel and purpose has this status."""

    type: Literal["consent"]
    channel: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")]
    purpose: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")]
    status: Literal["granted", "denied", "pending"] = "granted"


class LoyaltyTierRule(_Rule):
    """The person holds an active loyalty account in one of these tiers."""

    type: Literal["loyalty_tier"]
    tiers: Annotated[list[TierName], Field(min_length=1, max_length=20)]


class StoreVisitRule(_Rule):
    """The person bought in, or sent an event from, this store (in the last `within_days`)."""

    type: Literal["store_visited"]
    store_id: StoreId
    within_days: Days | None = None


class AndRule(_Rule):
    """Every sub-rule holds."""

    type: Literal["and"]
    rules: Annotated[list[Rule], Field(min_length=1, max_length=20)]


class OrRule(_Rule):
    """At least one sub-rule holds."""

    type: Literal["or"]
    rules: Annotated[list[Rule], Field(min_length=1, max_length=20)]


class NotRule(_Rule):
    """The sub-rule does not hold."""

    type: Literal["not"]
    rule: Rule


Leaf = (
    AttributeRule | LifecycleRule | EventRule | PurchaseRule | PredictionRule | ConsentRule
    | LoyaltyTierRule | StoreVisitRule
)  # fmt: skip
Rule = Annotated[
    AndRule | OrRule | NotRule | Leaf,
    Field(discriminator="type"),
]
for _m in (AndRule, OrRule, NotRule):
    _m.model_rebuild()

MAX_DEPTH = 8


class RuleError(ValueError):
    """A rule is well-formed JSON but not a usable rule; `path` locates the bad part."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def walk(rule: Rule, path: str = "rule", depth: int = 1) -> Iterator[tuple[Leaf, str]]:
    """Every leaf of the tree with its JSON path; RuleError when nested deeper than allowed."""
    if depth > MAX_DEPTH:
        raise RuleError(f"nested deeper than {MAX_DEPTH} levels", path)
    if isinstance(rule, AndRule | OrRule):
        for i, sub in enumerate(rule.rules):
            yield from walk(sub, f"{path}.rules[{i}]", depth + 1)
    elif isinstance(rule, NotRule):
        yield from walk(rule.rule, f"{path}.rule", depth + 1)
    else:
        yield rule, path


def check(rule: Rule, plan_properties: dict[str, frozenset[str]] | None = None) -> None:
    """Raise RuleError for the first unknown name or a value that does not fit its operator.

    `plan_properties` maps an event name to the properties its tracking plan declares; they are
    known for that event in addition to `KNOWN_EVENT_PROPERTIES`.
    """
    plans = plan_properties or {}
    for leaf, path in walk(rule):
        if isinstance(leaf, AttributeRule):
            _check_attribute(leaf, path)
        elif isinstance(leaf, EventRule):
            known = KNOWN_EVENT_PROPERTIES | plans.get(leaf.event, frozenset())
            for i, f in enumerate(leaf.where):
                if f.property not in known:
                    raise RuleError(
                        f"unknown event property {f.property!r} for event {leaf.event!r}",
                        f"{path}.where[{i}].property",
                    )


def _check_attribute(leaf: AttributeRule, path: str) -> None:
    kind = KNOWN_ATTRIBUTES.get(leaf.attribute)
    if kind is None:
        raise RuleError(f"unknown profile attribute {leaf.attribute!r}", f"{path}.attribute")
    values = leaf.value if isinstance(leaf.value, list) else [leaf.value]
    if leaf.op == "exists":
        if leaf.value is not None:
            raise RuleError("`exists` takes no value", f"{path}.value")
        return
    if leaf.op == "in" and not isinstance(leaf.value, list):
        raise RuleError("`in` takes a list of values", f"{path}.value")
    if leaf.op != "in" and isinstance(leaf.value, list):
        raise RuleError(f"`{leaf.op}` takes one value, not a list", f"{path}.value")
    for v in values:
        if json_type(v) != kind:
            raise RuleError(
                f"attribute {leaf.attribute!r} holds a {kind}, not {json_type(v)}", f"{path}.value"
            )
    if kind == "boolean" and leaf.op not in ("eq", "ne", "in"):
        raise RuleError(f"`{leaf.op}` does not apply to a boolean", f"{path}.op")


def depends_on(rule: Rule) -> frozenset[str]:
    """What the rule reads, as change topics: `profile`, `event:<name>`, `purchase`, `store`,
    `prediction`, `consent`, `loyalty`. A change under another topic cannot change its value."""
    out: set[str] = set()
    for leaf, _ in walk(rule):
        if isinstance(leaf, AttributeRule | LifecycleRule):
            out.add("profile")
        elif isinstance(leaf, EventRule):
            out.add(f"event:{leaf.event}")
        elif isinstance(leaf, PurchaseRule):
            out.add("purchase")
        elif isinstance(leaf, StoreVisitRule):
            out.add("store")
        elif isinstance(leaf, PredictionRule):
            out.add("prediction")
        elif isinstance(leaf, ConsentRule):
            out.add("consent")
        else:
            out.add("loyalty")
    return frozenset(out)


def json_type(value: object) -> str:
    """The JSON type name of a scalar (`null` for None)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"
