"""Pure rules of collection: Segment's clock-skew correction and its limits, tracking-plan
checks, consent detection and the bounds of properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from cloud.crm.events import clock
from cloud.crm.events.plan import TrackingPlan
from cloud.crm.events.schemas import CallIn
from cloud.crm.events.service import has_consent

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "occurred", "skew"),
    [
        (None, None, NOW, None),  # no time: when it arrived
        (NOW - DAY, None, NOW - DAY, None),  # no sentAt: as sent
        # the sender's clock is ten years slow: its 5 minutes before sending are kept
        (NOW - 3650 * DAY - timedelta(minutes=5), NOW - 3650 * DAY,
         NOW - timedelta(minutes=5), -3650 * DAY),
        (NOW + timedelta(hours=2), NOW + timedelta(hours=2, seconds=1), NOW - timedelta(seconds=1),
         timedelta(hours=2, seconds=1)),
    ],
)  # fmt: skip
def test_skew_correction(
    timestamp: datetime | None, sent_at: datetime | None, occurred: datetime,
    skew: timedelta | None,
) -> None:  # fmt: skip
    got = clock.correct(timestamp, sent_at, NOW)
    assert (got.occurred_at, got.skew, got.out_of_range) == (occurred, skew, None)


@pytest.mark.parametrize("offset", [3650 * DAY, -3650 * DAY, 2 * DAY, -800 * DAY])
def test_times_out_of_range_without_sent_at(offset: timedelta) -> None:
    assert clock.correct(NOW + offset, None, NOW).out_of_range


def test_plan_checks_only_planned_types() -> None:
    plan = TrackingPlan({("track", "Order"): {"type": "object", "required": ["total"]}})
    assert plan.check("page", "Home", {}) == []
    assert plan.check("track", "Order", {"total": 1}) == []
    (missing,) = plan.check("track", "Order", {})
    assert (missing.kind, missing.field) == ("plan", "properties")
    (unplanned,) = plan.check("track", "Other", {})
    assert unplanned.kind == "unplanned"


def test_nested_violations_name_their_path() -> None:
    line = {"type": "object", "properties": {"qty": {"type": "integer"}}}
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": line}}}
    plan = TrackingPlan({("track", "Order"): schema})
    (v,) = plan.check("track", "Order", {"items": [{"qty": 1}, {"qty": "two"}]})
    assert v.field == "properties.items.1.qty"


def test_consent_follows_segment_category_preferences() -> None:
    assert has_consent({"consent": {"categoryPreferences": {"Analytics": True}}})
    assert not has_consent({"consent": {"categoryPreferences": {"analytics": False}}})
    assert not has_consent({"consent": "yes"}) and not has_consent({})


def test_property_bounds() -> None:
    ok = {"type": "track", "event": "E", "anonymousId": "a"}
    assert CallIn.model_validate({**ok, "properties": {"s": "x" * 8000}}).properties
    for bad in ({"s": "x" * 40_000}, {f"k{i}": i for i in range(201)}, {"a": [[[[[[[[[1]]]]]]]]]}):
        with pytest.raises(ValidationError, match="properties"):
            CallIn.model_validate({**ok, "properties": bad})
    # many multi-byte characters: the fast path must not let them pass
    with pytest.raises(ValidationError, match="bytes"):
        CallIn.model_validate({**ok, "properties": {"s": "\u20ac" * 11_000}})
