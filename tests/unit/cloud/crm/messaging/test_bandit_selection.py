"""The pure parts of channel and time selection: hour buckets, the next local slot (time zones,
DST), the config's checks and the decision's reason."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from cloud.crm.messaging.bandit import Pick
from cloud.crm.messaging.selection import BanditConfig, Plan, next_slot

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("hour", "bucket"),
    [(7, None), (8, 8), (10, 8), (11, 11), (16, 14), (19, 17), (20, None), (23, None), (0, None)],
)
def test_bucket_of_a_local_hour(hour: int, bucket: int | None) -> None:
    assert BanditConfig().bucket_of(hour) == bucket


def test_a_bucket_may_wrap_midnight() -> None:
    assert BanditConfig(hour_buckets=(22,), bucket_h=4).bucket_of(1) == 22


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hour_buckets": (8, 9)},  # overlap with bucket_h 3
        {"hour_buckets": (8, 8)},
        {"hour_buckets": (24,)},
        {"hour_buckets": (1, 23)},  # 23 + 3 wraps into 1
        {"hour_buckets": ()},
    ],
)
def test_bad_bucket_configs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BanditConfig.model_validate(kwargs)


@pytest.mark.parametrize(
    ("now", "zone", "start", "expected"),
    [
        # 06:00 UTC is 14:00 in Shanghai: inside the 14-17 bucket, send now
        (datetime(2026, 12, 5, 6, 0, tzinfo=UTC), SHANGHAI, 14, None),
        # 14:00 local, bucket 17: today 17:00 local = 09:00 UTC
        (datetime(2026, 12, 5, 6, 0, tzinfo=UTC), SHANGHAI, 17, datetime(2026, 12, 5, 9, 0)),
        # 14:00 local, bucket 8: tomorrow 08:00 local = 00:00 UTC the next day
        (datetime(2026, 12, 5, 6, 0, tzinfo=UTC), SHANGHAI, 8, datetime(2026, 12, 6, 0, 0)),
        # London on the spring-forward day: 08:00 BST is 07:00 UTC
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), LONDON, 8, datetime(2026, 3, 29, 7, 0)),
        # and before it: 08:00 GMT is 08:00 UTC
        (datetime(2026, 3, 28, 0, 30, tzinfo=UTC), LONDON, 8, datetime(2026, 3, 28, 8, 0)),
    ],
)
def test_next_slot_in_the_customers_zone(
    now: datetime, zone: ZoneInfo, start: int, expected: datetime | None
) -> None:
    got = next_slot(now, zone, start, 3)
    if expected is None:
        assert got is None
    else:
        assert got == expected.replace(tzinfo=UTC)
        assert got is not None and got.astimezone(zone).hour == start


def test_the_plan_states_its_choice_and_posterior_means() -> None:
    plan = Plan(
        channel="sms",
        not_before=datetime(2026, 12, 5, 9, 0, tzinfo=UTC),
        hour_bucket=17,
        time_zone="Asia/Shanghai",
        channel_pick=Pick("sms", {"email": 0.1, "sms": 0.4}, {"email": 0.12, "sms": 0.35}),
        hour_pick=Pick("17", {"8": 0.2, "17": 0.3}, {"8": 0.25, "17": 0.25}),
    )
    reason = plan.reason()
    assert "channel sms by Thompson sampling" in reason and "email 0.120, sms 0.350" in reason
    assert "hour bucket 17:00 in Asia/Shanghai" in reason and "2026-12-05T09:00:00+00:00" in reason
    stored = plan.posterior()
    assert stored["channel"]["chosen"] == "sms" and stored["hour"]["means"]["17"] == 0.25
    assert Plan(channel="email").posterior() == {} and Plan(channel="email").reason() == ""
