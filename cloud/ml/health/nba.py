"""Next best action: an ordered rule set naming the suggested intervention and why.

Rules are checked top to bottom and the first that matches wins, so the order is the policy:
save valuable customers first (offer), then reward loyal ones (points bonus), then re-engage the
disengaged (message), then nudge new customers to a second purchase (message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from cloud.ml.health.score import HIGH_RISK, MEDIUM_RISK, Health, HealthInputs, Segment


class ActionKind(StrEnum):
    """Kinds of intervention."""

    OFFER = "offer"
    POINTS_BONUS = "points_bonus"
    MESSAGE = "message"
    NONE = "none"


@dataclass(frozen=True)
class Action:
    """A suggested intervention with the rule that chose it."""

    kind: ActionKind
    name: str
    rule: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return {**asdict(self), "kind": self.kind.value}


@dataclass(frozen=True)
class Rule:
    """One rule: a predicate and the action it suggests."""

    name: str
    when: Callable[[HealthInputs, Health], bool]
    kind: ActionKind
    action: str
    reason: str


RULES: tuple[Rule, ...] = (
    Rule(
        "valuable_at_risk",
        lambda i, h: i.churn_probability >= HIGH_RISK and h.value_index >= 0.6,
        ActionKind.OFFER,
        "personal win-back offer",
        "valuable customer with a high churn risk: worth a discount to keep",
    ),
    Rule(
        "loyal_at_risk",
        lambda i, h: i.churn_probability >= MEDIUM_RISK and i.purchase_days >= 3,
        ActionKind.POINTS_BONUS,
        "double points on the next purchase",
        "repeat buyer whose churn risk is rising: reward the habit",
    ),
    Rule(
        "disengaged",
        lambda i, h: i.churn_probability >= MEDIUM_RISK and i.engagement < 0.3,
        ActionKind.MESSAGE,
        "re-engagement message with new arrivals",
        "churn risk with little recent engagement: remind them we exist",
    ),
    Rule(
        "second_purchase",
        lambda i, h: h.segment is Segment.NEW,
        ActionKind.MESSAGE,
        "second-purchase nudge",
        "new customer: the second purchase is the strongest predictor of staying",
    ),
)


def next_best_action(inputs: HealthInputs, health: Health) -> Action:
    """The first matching rule's action, or NONE when the customer is healthy."""
    for rule in RULES:
        if rule.when(inputs, health):
            return Action(rule.kind, rule.action, rule.name, rule.reason)
    return Action(ActionKind.NONE, "no intervention", "healthy", "healthy customer; do not disturb")
