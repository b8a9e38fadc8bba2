"""Per-customer state updated incrementally from events, and the churn features derived from it.

The state is O(1) per customer (counters, sums and exponentially decayed rates), so an event costs
the same whatever the customer's history. Times are epoch seconds; the state round-trips through
JSON (`to_json` / `from_json`) for storage in PostgreSQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cloud.ml.events import EngagementKind

DAY = 86_400.0
#: Time constant of the decayed "recent activity" rates (about a quarter).
RECENT_TAU_DAYS = 90.0


@dataclass
class Snapshot:
    """A customer's features at time `at`, the churn probability predicted then (by a model that
    had learnt `seen` labels), and `y` once known."""

    at: float
    x: dict[str, float]
    p: float
    y: bool | None = None
    seen: int = 0


@dataclass
class CustomerState:
    """Everything the churn and CLV models know about one customer."""

    customer_id: str
    first_at: float = 0.0
    last_at: float = 0.0
    n_tx: int = 0
    total: float = 0.0
    last_amount: float = 0.0
    purchase_days: int = 0
    last_day: int = -1
    repeat_total: float = 0.0
    visits: int = 0
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    ew_at: float = 0.0
    ew_purchases: float = 0.0
    ew_visits: float = 0.0
    ew_engaged: float = 0.0
    stores: dict[str, int] = field(default_factory=dict)
    pending: list[Snapshot] = field(default_factory=list)
    next_snapshot_at: float | None = None
    idle_snapshots: int = 0

    @property
    def has_purchased(self) -> bool:
        """True once at least one purchase was seen."""
        return self.n_tx > 0

    @property
    def home_store(self) -> str | None:
        """The store where the customer bought most often."""
        return max(self.stores, key=lambda s: (self.stores[s], s)) if self.stores else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (shallow: dataclasses.asdict deep-copies and was the
        consumer's biggest cost)."""
        data = dict(self.__dict__)
        data["stores"] = dict(self.stores)
        data["pending"] = [dict(s.__dict__) for s in self.pending]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CustomerState:
        """Rebuild from `to_json` output."""
        pending = [Snapshot(**s) for s in data.get("pending", [])]
        return cls(**{**data, "pending": pending})


def _decay(state: CustomerState, t: float) -> None:
    if t <= state.ew_at:
        return
    f = math.exp(-(t - state.ew_at) / (RECENT_TAU_DAYS * DAY))
    state.ew_purchases *= f
    state.ew_visits *= f
    state.ew_engaged *= f
    state.ew_at = t


def add_purchase(state: CustomerState, t: float, amount: float, store_id: str | None) -> None:
    """Fold a purchase at time t into the state."""
    _decay(state, t)
    day = int(t // DAY)
    if state.n_tx == 0:
        state.first_at = t
    if day != state.last_day:
        state.purchase_days += 1
    if day != int(state.first_at // DAY):
        state.repeat_total += amount
    state.last_day = max(state.last_day, day)
    state.n_tx += 1
    state.total += amount
    state.last_amount = amount
    state.last_at = max(state.last_at, t)
    state.ew_purchases += 1.0
    if store_id:
        state.stores[store_id] = state.stores.get(store_id, 0) + 1


def add_visit(state: CustomerState, t: float, store_id: str | None) -> None:
    """Fold a loyalty check-in into the state."""
    _decay(state, t)
    state.visits += 1
    state.ew_visits += 1.0
    if store_id and not state.stores:
        state.stores[store_id] = 0


def add_engagement(state: CustomerState, t: float, kind: EngagementKind) -> None:
    """Fold a message event into the state."""
    _decay(state, t)
    if kind is EngagementKind.SENT:
        state.sent += 1
    elif kind is EngagementKind.OPENED:
        state.opened += 1
        state.ew_engaged += 1.0
    else:
        state.clicked += 1
        state.ew_engaged += 2.0


def _decayed(value: float, since: float, t: float) -> float:
    return value * math.exp(-max(t - since, 0.0) / (RECENT_TAU_DAYS * DAY))


def features_at(state: CustomerState, t: float) -> dict[str, float]:
    """The churn features of a customer as of time t (t >= the last event folded in)."""
    recency_d = max(t - state.last_at, 0.0) / DAY
    tenure_d = max(t - state.first_at, 0.0) / DAY
    avg = state.total / state.n_tx if state.n_tx else 0.0
    span_d = max(state.last_at - state.first_at, 0.0) / DAY
    mean_gap_d = span_d / (state.purchase_days - 1) if state.purchase_days > 1 else 0.0
    lifetime_rate = state.purchase_days / (tenure_d + 30.0) * RECENT_TAU_DAYS
    recent = _decayed(state.ew_purchases, state.ew_at, t)
    return {
        "recency_days": recency_d,
        "log_recency": math.log1p(recency_d),
        "log_tenure": math.log1p(tenure_d),
        "log_purchase_days": math.log1p(state.purchase_days),
        "log_tx": math.log1p(state.n_tx),
        "repeat": 1.0 if state.purchase_days > 1 else 0.0,
        "log_avg_spend": math.log1p(avg),
        "spend_trend": math.log1p(state.last_amount) - math.log1p(avg),
        "log_mean_gap": math.log1p(mean_gap_d),
        "overdue": math.log1p(recency_d / (mean_gap_d + 7.0)),
        "recent_rate": math.log1p(recent),
        "rate_trend": math.log1p(recent) - math.log1p(lifetime_rate),
        "log_visits": math.log1p(state.visits),
        "recent_visits": math.log1p(_decayed(state.ew_visits, state.ew_at, t)),
        "open_rate": (state.opened + 1.0) / (state.sent + 2.0),
        "click_rate": (state.clicked + 0.5) / (state.sent + 2.0),
        "recent_engagement": math.log1p(_decayed(state.ew_engaged, state.ew_at, t)),
    }


def engagement_level(state: CustomerState, t: float) -> float:
    """A 0..1 engagement index from recent visits, message opens/clicks and purchases."""
    recent = (
        _decayed(state.ew_visits, state.ew_at, t)
        + _decayed(state.ew_engaged, state.ew_at, t)
        + _decayed(state.ew_purchases, state.ew_at, t)
    )
    return 1.0 - math.exp(-recent / 2.0)


def merge_states(survivor: CustomerState, absorbed: CustomerState) -> CustomerState:
    """Fold the state of a profile merged into `survivor` (a CRM identity merge) into it."""
    absorbed_later = absorbed.has_purchased and (
        not survivor.has_purchased or absorbed.last_at > survivor.last_at
    )
    later, earlier = (absorbed, survivor) if absorbed_later else (survivor, absorbed)
    t = max(survivor.ew_at, absorbed.ew_at)
    _decay(survivor, t)
    _decay(absorbed, t)
    buyers = [s for s in (survivor, absorbed) if s.has_purchased]
    stores = dict(survivor.stores)
    for k, v in absorbed.stores.items():
        stores[k] = stores.get(k, 0) + v
    return CustomerState(
        customer_id=survivor.customer_id,
        first_at=min((s.first_at for s in buyers), default=0.0),
        last_at=max((s.last_at for s in buyers), default=0.0),
        n_tx=survivor.n_tx + absorbed.n_tx,
        total=survivor.total + absorbed.total,
        last_amount=later.last_amount,
        # same-day purchases of both profiles count twice: rare, and only approximate
        purchase_days=survivor.purchase_days + absorbed.purchase_days,
        last_day=max(survivor.last_day, absorbed.last_day),
        repeat_total=survivor.repeat_total + absorbed.repeat_total,
        visits=survivor.visits + absorbed.visits,
        sent=survivor.sent + absorbed.sent,
        opened=survivor.opened + absorbed.opened,
        clicked=survivor.clicked + absorbed.clicked,
        ew_at=t,
        ew_purchases=survivor.ew_purchases + absorbed.ew_purchases,
        ew_visits=survivor.ew_visits + absorbed.ew_visits,
        ew_engaged=survivor.ew_engaged + absorbed.ew_engaged,
        stores=stores,
        pending=sorted([*later.pending, *earlier.pending], key=lambda s: s.at),
        next_snapshot_at=later.next_snapshot_at,
        idle_snapshots=later.idle_snapshots,
    )
