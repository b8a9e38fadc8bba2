"""Calendar arithmetic in a store's time zone: alignment, DST days, defaults and limits."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cloud.core.errors import InvalidInputError
from cloud.footfall.timeframe import align, bucket_starts, change_pct, resolve_range

BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")


def test_daily_buckets_follow_dst() -> None:
    start = datetime(2026, 10, 24, tzinfo=BERLIN)
    starts = bucket_starts(start, datetime(2026, 10, 27, tzinfo=BERLIN), "1d", BERLIN)
    assert [s.astimezone(BERLIN).hour for s in starts] == [0, 0, 0]
    utc = [s.astimezone(UTC) for s in starts]  # same-tzinfo subtraction would ignore DST
    lengths = [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(utc)]
    assert lengths == [24.0, 25.0]  # the night the clocks go back


def test_quarter_hours_align_in_half_hour_zones() -> None:
    ts = datetime(2026, 11, 24, 10, 52, 13, tzinfo=KOLKATA)
    assert align(ts, "15m", KOLKATA) == datetime(2026, 11, 24, 10, 45, tzinfo=KOLKATA)
    assert align(ts, "1d", KOLKATA) == datetime(2026, 11, 24, tzinfo=KOLKATA)


def test_hourly_starts_are_contiguous() -> None:
    lo = datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN)
    starts = bucket_starts(lo, lo.astimezone(UTC) + timedelta(hours=4), "1h", BERLIN)
    assert len(starts) == 5 and starts[0] == datetime(2026, 3, 29, 0, tzinfo=BERLIN)
    assert [s.hour for s in starts] == [0, 1, 3, 4, 5]  # 02:00 does not exist that night
    utc = [s.astimezone(UTC) for s in starts]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(utc))


def test_resolve_range_defaults_to_today_and_reads_naive_as_local() -> None:
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    lo, hi = resolve_range(None, None, BERLIN, now)
    assert hi == now and lo == datetime(2026, 11, 24, tzinfo=BERLIN)
    lo, _ = resolve_range(datetime(2026, 11, 20, 8), None, BERLIN, now)
    assert lo.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        (datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "before"),
        (datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "800 days"),
    ],
)
def test_bad_ranges(start: datetime, end: datetime, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        resolve_range(start, end, BERLIN, end)


def test_too_many_buckets() -> None:
    lo = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="buckets"):
        bucket_starts(lo, lo + timedelta(days=40), "15m", ZoneInfo("UTC"))


def test_change_pct() -> None:
    assert change_pct(150, 100) == 50.0 and change_pct(5, 0) is None and change_pct(0, 4) == -100.0


def test_whole_hour_offsets() -> None:
    from cloud.footfall.timeframe import whole_hour_offsets

    now = datetime(2026, 11, 24, tzinfo=UTC)
    assert whole_hour_offsets(BERLIN, now, now + timedelta(days=1))
    assert not whole_hour_offsets(KOLKATA, now, now + timedelta(days=1))


def test_hours_align_to_local_hours() -> None:
    ts = datetime(2026, 11, 24, 10, 52, tzinfo=KOLKATA)
    assert align(ts, "1h", KOLKATA) == datetime(2026, 11, 24, 10, 0, tzinfo=KOLKATA)
