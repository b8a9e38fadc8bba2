"""A workflow definition: a versioned JSON graph of nodes (with positions for a visual builder),
its trigger, goal, exit criteria and re-entry policy. Pydantic checks each node's shape; the
graph rules (reachability, cycles, timeouts, references) are in `validation.py`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

NodeId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
Key = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Seconds = Annotated[int, Field(ge=0, le=10 * 365 * 86400)]
Days = Annotated[int, Field(ge=0, le=3650)]
Scalar = bool | int | float | str | None  # bool first: a union serialises True as 1 otherwise


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


def _cron(expr: str) -> str:
    if not croniter.is_valid(expr):
        raise ValueError(f"not a cron expression: {expr!r}")
    return expr


TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_/+-]+$"),
    AfterValidator(_zone),
]


class Position(_Model):
    """Where the builder draws the node."""

    x: float = Field(default=0, ge=-1e6, le=1e6, description="Canvas x.")
    y: float = Field(default=0, ge=-1e6, le=1e6, description="Canvas y.")


# --- conditions (also used for exit criteria) -----------------------------------------------


class AttributeCondition(_Model):
    """A profile attribute compared with a value."""

    kind: Literal["attribute"] = "attribute"
    attribute: Key = Field(description="Key in the profile's attributes.")
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "exists"] = Field(description="Operator.")
    value: Scalar = Field(default=None, description="Compared value (unused by `exists`).")


class EventCondition(_Model):
    """The customer did `event` within the last `within_s` seconds (at least `count` times)."""

    kind: Literal["event"] = "event"
    event: Name = Field(description="Event name in the event stream.")
    within_s: Seconds = Field(description="Look-back window in seconds.")
    count: int = Field(default=1, ge=1, le=1_000_000, description="At least this many.")


class SegmentCondition(_Model):
    """The customer is (or is not) a current member of a segment."""

    kind: Literal["segment"] = "segment"
    segment_id: int = Field(ge=1, le=2**63 - 1, description="Segment id.")
    member: bool = Field(default=True, description="True: is a member; False: is not.")


class ConsentCondition(_Model):
    """The customer's consent for a channel and purpose is granted."""

    kind: Literal["consent"] = "consent"
    channel: Key = Field(description="Consent channel (email, sms...).")
    purpose: Key = Field(default="marketing", description="Consent purpose.")


Condition = Annotated[
    AttributeCondition | EventCondition | SegmentCondition | ConsentCondition,
    Field(discriminator="kind"),
]

# --- triggers ---------------------------------------------------------------------------------


class PropertyFilter(_Model):
    """An event property equal to a value."""

    property: Key = Field(description="Property name.")
    equals: Scalar = Field(description="Required value.")


class EventTrigger(_Model):
    """Enter when the customer does `event` (with every filter matching)."""

    kind: Literal["event"] = "event"
    event: Name = Field(description="Event name.")
    filters: list[PropertyFilter] = Field(default=[], max_length=20, description="All must hold.")


class SegmentTrigger(_Model):
    """Enter on segment entry or exit (domain events segment.entered / segment.exited)."""

    kind: Literal["segment"] = "segment"
    segment_id: int = Field(ge=1, le=2**63 - 1, description="Segment id.")
    on: Literal["entered", "exited"] = Field(default="entered", description="Which change.")
    exit_on_leave: bool = Field(
        default=True, description="On `entered`: leaving the segment ends the execution."
    )


class DateTrigger(_Model):
    """Enter `offset_days` after (negative: before) a date attribute, every year when `annual`
    (birthdays, membership anniversaries). Checked once a day."""

    kind: Literal["date"] = "date"
    attribute: Key = Field(description="Attribute holding an ISO date (YYYY-MM-DD...).")
    offset_days: int = Field(default=0, ge=-366, le=366, description="Days after the date.")
    annual: bool = Field(default=True, description="Match month and day every year.")


class ScheduleTrigger(_Model):
    """Enter the members of a segment (everyone when none) at each cron time in `timezone`."""

    kind: Literal["schedule"] = "schedule"
    cron: Annotated[str, AfterValidator(_cron)] = Field(
        min_length=9, max_length=100, pattern=r"^[0-9*/,\- A-Za-z]+$"
    )
    timezone: TimeZone = "UTC"
    segment_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="Audience.")


class ApiTrigger(_Model):
    """Enter only through POST /v1/automation/workflows/{id}/enrol."""

    kind: Literal["api"] = "api"


class ScoreTrigger(_Model):
    """Enter on the domain event score.threshold_crossed of a programme and threshold."""

    kind: Literal["score"] = "score"
    programme: Key = Field(description="Scoring programme.")
    threshold: float = Field(ge=-1e12, le=1e12, description="The threshold crossed.")
    direction: Literal["up", "down"] = Field(default="up", description="Crossing direction.")


class ChurnTrigger(_Model):
    """Enter when the churn probability in the predictions table is above `above`."""

    kind: Literal["churn"] = "churn"
    above: float = Field(ge=0, le=1, description="Churn probability threshold.")


Trigger = Annotated[
    EventTrigger | SegmentTrigger | DateTrigger | ScheduleTrigger | ApiTrigger | ScoreTrigger
    | ChurnTrigger,
    Field(discriminator="kind"),
]  # fmt: skip

# --- nodes ------------------------------------------------------------------------------------


class _Node(_Model):
    id: NodeId = Field(description="Unique within the definition.")
    label: str = Field(default="", max_length=200, pattern=r"^[^\x00]*$")
    position: Position = Field(default=Position(), description="Canvas position.")


class EntryNode(_Node):
    """Where every execution starts."""

    type: Literal["entry"] = "entry"
    next: NodeId | None = Field(default=None, description="First step.")


class ConditionNode(_Node):
    """Yes and no paths."""

    type: Literal["condition"] = "condition"
    condition: Condition
    yes: NodeId | None = Field(default=None, description="Next when true (none: end).")
    no: NodeId | None = Field(default=None, description="Next when false (none: end).")


class WaitNode(_Node):
    """Wait a duration (`seconds`), or until a local time of day (`until_local`, HH:MM) in the
    customer's zone (attribute `timezone`, else `default_timezone`)."""

    type: Literal["wait"] = "wait"
    seconds: Seconds | None = Field(default=None, description="A duration.")
    until_local: str | None = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    default_timezone: TimeZone = "UTC"
    next: NodeId | None = None


class WaitEventNode(_Node):
    """Wait until the customer does `event` (`yes`), at most `timeout_s` (`timeout` path)."""

    type: Literal["wait_event"] = "wait_event"
    event: Name
    timeout_s: Seconds | None = Field(default=None, description="Required: the timeout.")
    yes: NodeId | None = None
    timeout: NodeId | None = None


class SplitBranch(_Model):
    """One branch of a split with its weight."""

    name: Key
    weight: float = Field(gt=0, le=1e6)
    next: NodeId | None = None


class SplitNode(_Node):
    """Random (or A/B) split by weight; the assignment is recorded."""

    type: Literal["split"] = "split"
    branches: list[SplitBranch] = Field(min_length=2, max_length=10)


class SendAction(_Model):
    """Send a message through the messaging hub."""

    kind: Literal["send"] = "send"
    channel: Key
    template: Name
    purpose: Literal["transactional", "marketing"] = "marketing"
    priority: Literal["high", "normal", "low"] = "normal"
    variables: dict[str, Scalar] = Field(default={}, max_length=50)


class PointsAction(_Model):
    """Award (positive) or deduct (negative) loyalty points."""

    kind: Literal["points"] = "points"
    points: int = Field(ge=-1_000_000, le=1_000_000)
    reason: Name = "automation"


class SetAttributeAction(_Model):
    """Set a profile attribute."""

    kind: Literal["set_attribute"] = "set_attribute"
    attribute: Key
    value: Scalar


class LifecycleAction(_Model):
    """Move the customer to a lifecycle stage."""

    kind: Literal["lifecycle"] = "lifecycle"
    stage: Literal["awareness", "consideration", "purchase", "retention", "advocacy"]


class SegmentAction(_Model):
    """Add to or remove from a static segment."""

    kind: Literal["segment"] = "segment"
    segment_id: int = Field(ge=1, le=2**63 - 1)
    add: bool = True


class WorkflowAction(_Model):
    """Enrol in, or remove from, another workflow."""

    kind: Literal["workflow"] = "workflow"
    workflow_id: int = Field(ge=1, le=2**63 - 1)
    enrol: bool = True


class WebhookAction(_Model):
    """POST the execution to a URL, signed with HMAC-SHA256 (X-MallPulse-Signature) and carrying
    the idempotency key (Idempotency-Key) for the receiver to drop a repeat."""

    kind: Literal["webhook"] = "webhook"
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://[^\x00\s]+$")
    secret_name: Key = Field(default="default", description="Which configured secret signs.")


class StaffTaskAction(_Model):
    """Create a task or an alert for store staff."""

    kind: Literal["staff_task"] = "staff_task"
    title: Name
    alert: bool = False
    store_id: str | None = Field(default=None, max_length=64, pattern=r"^[^\x00]*$")


Action = Annotated[
    SendAction | PointsAction | SetAttributeAction | LifecycleAction | SegmentAction
    | WorkflowAction | WebhookAction | StaffTaskAction,
    Field(discriminator="kind"),
]  # fmt: skip


class ActionNode(_Node):
    """Do one thing, once (idempotency key: execution, node, entry count)."""

    type: Literal["action"] = "action"
    action: Action
    next: NodeId | None = None


class EndNode(_Node):
    """The execution completes here."""

    type: Literal["end"] = "end"


Node = Annotated[
    EntryNode | ConditionNode | WaitNode | WaitEventNode | SplitNode | ActionNode | EndNode,
    Field(discriminator="type"),
]


class Goal(_Model):
    """Conversion: the customer does `event` after entering (the execution ends `converted`)."""

    event: Name


class ReEntry(_Model):
    """May a customer enter again after an execution ended?"""

    policy: Literal["never", "after_days", "always"] = "never"
    days: Days = Field(default=0, description="For `after_days`: days since the last entry.")


class Definition(_Model):
    """A workflow's graph and rules; each publish stores one as a new version."""

    trigger: Trigger
    nodes: list[Node] = Field(min_length=1, max_length=500)
    goal: Goal | None = None
    exit_when: list[Condition] = Field(default=[], max_length=20, description="Any true: exit.")
    exit_on_consent: ConsentCondition | None = Field(
        default=None, description="Exit when this consent is withdrawn (denied)."
    )
    reentry: ReEntry = ReEntry()
    holdout_percent: float = Field(default=0, ge=0, le=50, description="Kept out, measured.")

    def node(self, node_id: str) -> Node | None:
        """The node with this id, or None."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        return None

    def entry(self) -> EntryNode:
        """The entry node (validation ensures exactly one)."""
        for n in self.nodes:
            if isinstance(n, EntryNode):
                return n
        raise LookupError("no entry node")


def successors(node: Node) -> list[tuple[str, str]]:
    """(branch, next node id) of a node's outgoing edges."""
    out: list[tuple[str, str | None]]
    if isinstance(node, EntryNode | WaitNode | ActionNode):
        out = [("next", node.next)]
    elif isinstance(node, ConditionNode):
        out = [("yes", node.yes), ("no", node.no)]
    elif isinstance(node, WaitEventNode):
        out = [("yes", node.yes), ("timeout", node.timeout)]
    elif isinstance(node, SplitNode):
        out = [(b.name, b.next) for b in node.branches]
    else:
        out = []
    return [(b, n) for b, n in out if n is not None]


def is_wait(node: Node) -> bool:
    """Whether the node can hold an execution over time (breaks a cycle)."""
    return isinstance(node, WaitNode | WaitEventNode)


def as_json(definition: Definition) -> dict[str, JsonValue]:
    """The definition as stored JSON."""
    out: dict[str, JsonValue] = definition.model_dump(mode="json")
    return out


def duration(seconds: int) -> timedelta:
    """A wait's duration."""
    return timedelta(seconds=seconds)
