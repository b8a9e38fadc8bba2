"""The canonical events the predictive models learn from, and their validation.

Every event passes `validate` before it can touch a model: a negative amount, a non-finite value,
a naive timestamp or a timestamp in the future raises InvalidEventError (the consumer then records
it in the dead-letter table instead of learning from it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cloud.ml.errors import InvalidEventError

#: Clock skew tolerated between a till and the cloud before a timestamp counts as "in the future".
MAX_CLOCK_SKEW = timedelta(minutes=5)


class EngagementKind(StrEnum):
    """What a customer did with a message."""

    SENT = "sent"
    OPENED = "opened"
    CLICKED = "clicked"


@dataclass(frozen=True)
class Purchase:
    """A POS transaction of a known customer."""

    customer_id: str
    occurred_at: datetime
    amount: float
    store_id: str | None = None
    source_id: str | None = None


@dataclass(frozen=True)
class Visit:
    """A loyalty check-in (the customer was in a store, bought or not)."""

    customer_id: str
    occurred_at: datetime
    store_id: str | None = None
    source_id: str | None = None


@dataclass(frozen=True)
class Engagement:
    """A message sent to, opened or clicked by a customer."""

    customer_id: str
    occurred_at: datetime
    kind: EngagementKind
    source_id: str | None = None


Event = Purchase | Visit | Engagement


def validate(event: Event, *, now: datetime | None = None) -> Event:
    """Return the event unchanged or raise InvalidEventError naming the bad field."""
    where = f"event {event.source_id}" if event.source_id else "event"
    if not event.customer_id or not event.customer_id.strip():
        raise InvalidEventError(f"{where}: customer_id is empty")
    ts = event.occurred_at
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InvalidEventError(f"{where}: occurred_at {ts.isoformat()} has no time zone")
    limit = (now or datetime.now(UTC)) + MAX_CLOCK_SKEW
    if ts > limit:
        raise InvalidEventError(
            f"{where}: occurred_at {ts.isoformat()} is in the future (now {limit.isoformat()})"
        )
    if isinstance(event, Purchase):
        if not math.isfinite(event.amount):
            raise InvalidEventError(f"{where}: amount {event.amount!r} is not a finite number")
        if event.amount < 0:
            raise InvalidEventError(
                f"{where}: amount {event.amount} is negative; refunds are not purchases"
            )
    return event
