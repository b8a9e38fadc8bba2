"""Pure time arithmetic in a store's calendar: ranges, bucket alignment, bucket starts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cloud.core.errors import InvalidInputError

STEP = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1)}
MAX_POINTS = 3000
#: Ranges must lie in these years, so "last week" and local-time arithmetic stay representable.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def local(ts: datetime, tz: ZoneInfo) -> datetime:
    """An aware datetime; naive input is read as the store's local time."""
    return ts.replace(tzinfo=tz) if ts.tzinfo is None else ts


def start_of_day(ts: datetime, tz: ZoneInfo) -> datetime:
    """Local midnight of the day containing `ts`."""
    return datetime.combine(ts.astimezone(tz).date(), time(0), tzinfo=tz)


def align(ts: datetime, bucket: str, tz: ZoneInfo) -> datetime:
    """The start of the bucket containing `ts` (15m in absolute time, 1h at the local hour, 1d
    at local midnight)."""
    if bucket == "1d":
        return start_of_day(ts, tz)
    if bucket == "1h":  # local hours: in a +05:30 zone they start at :30 UTC
        return ts.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    step = int(STEP[bucket].total_seconds())
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step, tz=UTC).astimezone(tz)


def bucket_starts(start: datetime, end: datetime, bucket: str, tz: ZoneInfo) -> list[datetime]:
    """Every bucket start in [start, end), start aligned; local days follow DST changes."""
    out: list[datetime] = []
    cur = align(start, bucket, tz)
    while cur < end:
        out.append(cur)
        if len(out) > MAX_POINTS:
            raise InvalidInputError(
                f"the range has more than {MAX_POINTS} {bucket} buckets; use a larger bucket"
            )
        if bucket == "1d":
            day = cur.astimezone(tz).date() + timedelta(days=1)
            cur = datetime.combine(day, time(0), tzinfo=tz)
        else:
            cur = (cur.astimezone(UTC) + STEP[bucket]).astimezone(tz)
    return out


def _supported(ts: datetime) -> datetime:
    if not EARLIEST <= ts <= LATEST:
        raise InvalidInputError(f"times must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return ts


def resolve_range(
    start: datetime | None, end: datetime | None, tz: ZoneInfo, now: datetime
) -> tuple[datetime, datetime]:
    """[start, end) with defaults: from local midnight today until now."""
    end_ts = _supported(local(end, tz) if end is not None else now)
    start_ts = _supported(local(start, tz) if start is not None else start_of_day(end_ts, tz))
    if start_ts >= end_ts:
        raise InvalidInputError("`from` must be before `to`")
    if end_ts - start_ts > timedelta(days=800):
        raise InvalidInputError("the range may span at most 800 days")
    return start_ts, end_ts


def change_pct(now: int, before: int) -> float | None:
    """Percent change from `before` to `now`; None when there was nothing before."""
    return None if before == 0 else round(100.0 * (now - before) / before, 1)


def whole_hour_offsets(tz: ZoneInfo, start: datetime, end: datetime) -> bool:
    """True when the zone's UTC offset is a whole number of hours at both ends of the range
    (so the UTC-hour rollup has the store's local hours)."""
    for ts in (start, end):
        offset = ts.astimezone(tz).utcoffset()
        if offset is None or offset.total_seconds() % 3600:
            return False
    return True
