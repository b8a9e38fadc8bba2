"""Event time: Segment's clock-skew correction and the window of times a live call may claim."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: A corrected time later than this after receipt is a client bug, not a clock to trust.
MAX_FUTURE = timedelta(days=1)
#: A live call older than this is refused: history goes through `mallpulse cloud events import`.
MAX_PAST = timedelta(days=730)
#: A sender's clock further off than this is worth counting (it was corrected).
SKEW_WORTH_COUNTING = timedelta(minutes=5)


@dataclass(frozen=True)
class EventTime:
    """The time an event is stored under, and what happened to get it."""

    occurred_at: datetime
    skew: timedelta | None  # how far the sender's clock was off, when sentAt told us
    out_of_range: str | None  # why the time cannot be stored, when it cannot


def correct(
    timestamp: datetime | None, sent_at: datetime | None, received_at: datetime
) -> EventTime:
    """timestamp = received_at - (sent_at - timestamp), as Segment does; no timestamp means
    received_at, no sent_at means the timestamp as sent."""
    if timestamp is None:
        return EventTime(received_at, None, None)
    skew = None
    occurred = timestamp
    if sent_at is not None:
        occurred = received_at - (sent_at - timestamp)
        skew = sent_at - received_at
    if occurred > received_at + MAX_FUTURE:
        return EventTime(occurred, skew, f"timestamp {occurred.isoformat()} is in the future")
    if occurred < received_at - MAX_PAST:
        return EventTime(
            occurred,
            skew,
            f"timestamp {occurred.isoformat()} is more than {MAX_PAST.days} days old",
        )
    return EventTime(occurred, skew, None)
