"""The churn learning loop: snapshots, labels, learn_one and predict_proba_one as events arrive.

Churn definition: a customer observed at time s has churned if they make no purchase in
(s, s + horizon]. Observations ("snapshots") are taken at every purchase and then every
`snapshot_every_days` while the customer stays idle (up to `max_idle_snapshots`), so the model
learns what growing recency means. A snapshot stores its features and the probability predicted at
that moment. The customer's next purchase within the horizon marks it 0; it is learnt only when
the stream clock (the latest event time seen) passes s + horizon, as 1 if nothing marked it. Holding
back the early "stayed" labels until the horizon ends removes a selection bias (otherwise recent
snapshots could only ever be labelled "stayed"). Learning calls `learn`, which keeps the
progressive-validation metrics honest: the prediction was made before the label existed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cloud.ml.churn.features import (
    DAY,
    CustomerState,
    Snapshot,
    add_engagement,
    add_purchase,
    add_visit,
    features_at,
)
from cloud.ml.churn.model import ChurnModel, DriftEvent
from cloud.ml.events import Engagement, Event, Purchase, Visit


@dataclass(frozen=True)
class ChurnConfig:
    """How churn is defined and sampled."""

    horizon_days: float = 182.0
    snapshot_every_days: float = 28.0
    max_idle_snapshots: int = 6

    @property
    def horizon_s(self) -> float:
        """Horizon in seconds."""
        return self.horizon_days * DAY


class CustomerStore(Protocol):
    """Where customer states live while the engine works on them."""

    def get(self, customer_id: str) -> CustomerState | None:
        """The state of a customer, or None if unknown."""

    def put(self, state: CustomerState, next_due: float | None) -> None:
        """Store a state and when it next needs attention from the clock."""

    def due(self, upto: float) -> Iterable[CustomerState]:
        """States whose next_due <= upto."""


class InMemoryCustomerStore:
    """A dict plus a lazy heap of due times; also the write-back buffer of the Postgres consumer."""

    def __init__(self, states: Iterable[tuple[CustomerState, float | None]] = ()) -> None:
        self.states: dict[str, CustomerState] = {}
        self.next_due: dict[str, float | None] = {}
        self.dirty: set[str] = set()
        self._heap: list[tuple[float, str]] = []
        for state, due in states:
            self._store(state, due)

    def _store(self, state: CustomerState, next_due: float | None) -> None:
        self.states[state.customer_id] = state
        self.next_due[state.customer_id] = next_due
        if next_due is not None:
            heapq.heappush(self._heap, (next_due, state.customer_id))

    def get(self, customer_id: str) -> CustomerState | None:
        """The state of a customer, or None if unknown."""
        return self.states.get(customer_id)

    def put(self, state: CustomerState, next_due: float | None) -> None:
        """Store a state and mark it dirty."""
        self._store(state, next_due)
        self.dirty.add(state.customer_id)

    def due(self, upto: float) -> Iterable[CustomerState]:
        """Pop the states due by `upto` (stale heap entries are skipped)."""
        out: list[CustomerState] = []
        while self._heap and self._heap[0][0] <= upto:
            due, cid = heapq.heappop(self._heap)
            if self.next_due.get(cid) == due:
                out.append(self.states[cid])
                self.next_due[cid] = None
        return out


class ChurnEngine:
    """Applies events to customer states and the churn model."""

    def __init__(self, model: ChurnModel, store: CustomerStore, config: ChurnConfig) -> None:
        self.model = model
        self.store = store
        self.config = config
        self.drift_events: list[DriftEvent] = []

    def apply(self, event: Event) -> float | None:
        """Apply one (already validated) event; returns the churn probability after a purchase."""
        t = event.occurred_at.timestamp()
        self.advance(t)
        state = self.store.get(event.customer_id) or CustomerState(event.customer_id)
        if isinstance(event, Purchase):
            return self._on_purchase(state, t, event)
        if isinstance(event, Visit):
            add_visit(state, max(t, state.ew_at), event.store_id)
        elif isinstance(event, Engagement):
            add_engagement(state, max(t, state.ew_at), event.kind)
        self.store.put(state, self.next_due(state))
        return None

    def advance(self, t: float) -> None:
        """Move the stream clock to t, labelling snapshots whose horizon has passed."""
        if t <= self.model.clock:
            return
        self.model.clock = t
        for state in list(self.store.due(t)):
            self._catch_up(state, t)
            self.store.put(state, self.next_due(state))

    def score(self, state: CustomerState, t: float) -> float:
        """predict_proba_one for a customer as of time t (no learning)."""
        return self.model.predict_proba(features_at(state, max(t, state.last_at)))

    def _on_purchase(self, state: CustomerState, t: float, event: Purchase) -> float:
        if state.has_purchased:
            self._catch_up(state, t)
            for snap in state.pending:
                if snap.y is None:
                    snap.y = False
        add_purchase(state, t, event.amount, event.store_id)
        x = features_at(state, t)
        p = self.model.predict_proba(x)
        state.pending.append(Snapshot(at=t, x=x, p=p, seen=self.model.samples_seen))
        state.next_snapshot_at = t + self.config.snapshot_every_days * DAY
        state.idle_snapshots = 0
        self.store.put(state, self.next_due(state))
        return p

    def _catch_up(self, state: CustomerState, t: float) -> None:
        """Take idle snapshots due before t and label the ones whose horizon ended before t."""
        cfg = self.config
        while (
            state.next_snapshot_at is not None
            and state.idle_snapshots < cfg.max_idle_snapshots
            and state.next_snapshot_at < t
        ):
            at = state.next_snapshot_at
            x = features_at(state, at)
            p = self.model.predict_proba(x)
            state.pending.append(Snapshot(at=at, x=x, p=p, seen=self.model.samples_seen))
            state.idle_snapshots += 1
            state.next_snapshot_at = at + cfg.snapshot_every_days * DAY
        # pending is in time order: the snapshots whose horizon has ended form a prefix
        horizon = cfg.horizon_s
        done = 0
        for snap in state.pending:
            if snap.at + horizon >= t:
                break
            self._learn(snap, churned=True if snap.y is None else snap.y)
            done += 1
        if done:
            del state.pending[:done]

    def _learn(self, snap: Snapshot, *, churned: bool) -> None:
        event = self.model.learn(snap.x, churned, snap.p, seen=snap.seen)
        if event is not None:
            self.drift_events.append(event)

    def next_due(self, state: CustomerState) -> float | None:
        """When the clock next has work for this customer (a snapshot or a horizon end)."""
        return next_due(state, self.config)


def next_due(state: CustomerState, config: ChurnConfig) -> float | None:
    """When the clock next has work for this customer (a snapshot or a horizon end)."""
    times = [s.at + config.horizon_s for s in state.pending]
    if state.next_snapshot_at is not None and state.idle_snapshots < config.max_idle_snapshots:
        times.append(state.next_snapshot_at)
    return min(times) if times else None
