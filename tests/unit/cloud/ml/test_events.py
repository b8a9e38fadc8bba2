"""Event validation: bad events never reach a model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.ml.errors import InvalidEventError
from cloud.ml.events import Engagement, EngagementKind, Purchase, Visit, validate

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (Purchase("c1", NOW, -5.0, source_id="t:1"), "amount -5.0 is negative"),
        (Purchase("c1", NOW, float("nan")), "not a finite number"),
        (Purchase("c1", NOW + timedelta(days=2), 10.0), "in the future"),
        (Purchase("c1", datetime(2026, 1, 1), 10.0), "no time zone"),
        (Purchase(" ", NOW, 10.0), "customer_id is empty"),
        (Visit("c1", NOW + timedelta(hours=1)), "in the future"),
        (Engagement("c1", NOW + timedelta(hours=1), EngagementKind.OPENED), "in the future"),
    ],
)
def test_invalid_events_are_rejected_with_the_reason(event: Purchase, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message) as info:
        validate(event, now=NOW)
    assert info.value.status == 422


def test_valid_events_pass_unchanged_including_small_clock_skew() -> None:
    ok = Purchase("c1", NOW + timedelta(minutes=2), 0.0, store_id="s1")
    assert validate(ok, now=NOW) is ok
