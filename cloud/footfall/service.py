"""Footfall services: keyword-only functions over a connection, raising CloudErrors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from cloud.api.schemas import footfall as s
from cloud.core.errors import NotFoundError
from cloud.db.repositories import footfall as repo
from cloud.footfall.timeframe import (
    bucket_starts,
    change_pct,
    resolve_range,
    whole_hour_offsets,
)

Conn = psycopg.Connection[Any]
WEEK = timedelta(days=7)


def _tz(conn: Conn, store_id: str) -> tuple[str, ZoneInfo]:
    name = repo.store_timezone(conn, store_id)
    if name is None:
        raise NotFoundError(f"store '{store_id}' does not exist")
    return name, ZoneInfo(name)


def live_footfall(conn: Conn, *, store_id: str) -> s.LiveFootfall:
    """The store now: occupancy per zone, today's in/out per entrance, queues, devices."""
    row = repo.live(conn, store_id)
    if row is None:
        raise NotFoundError(f"store '{store_id}' does not exist")
    tz_name, raw_zones, raw_lines, raw_queues, online, total = row
    zones = [s.ZoneLive(zone_id=z, occupancy=o, as_of=t) for z, o, t in raw_zones]
    lines = [s.EntranceToday(line_id=x, in_count=i, out_count=o) for x, i, o in raw_lines]
    queues = [
        s.QueueLive(zone_id=z, length=n, estimated_wait_s=w, as_of=t) for z, n, w, t in raw_queues
    ]
    return s.LiveFootfall(
        store_id=store_id, timezone=tz_name, occupancy=sum(z.occupancy for z in zones),
        in_today=sum(x.in_count for x in lines), out_today=sum(x.out_count for x in lines),
        zones=zones, entrances=lines, queues=queues, devices_online=online, devices_total=total,
    )  # fmt: skip


def footfall_series(
    conn: Conn,
    *,
    store_id: str,
    start: datetime | None,
    end: datetime | None,
    bucket: s.Bucket,
    now: datetime | None = None,
) -> s.FootfallSeries:
    """In/out per bucket of the store's calendar, each against the same bucket last week."""
    tz_name, tz = _tz(conn, store_id)
    lo, hi = resolve_range(start, end, tz, now or datetime.now(UTC))
    starts = bucket_starts(lo, hi, bucket, tz)
    lo = starts[0] if starts else lo
    whole = whole_hour_offsets(tz, lo - WEEK, hi)
    current = {
        b: (i, o)
        for b, i, o in repo.series(conn, store_id, tz_name, lo, hi, bucket, whole_hours=whole)
    }
    # the same local bucket last week: wall-clock arithmetic, so a DST change in between
    # still pairs 10:00 with 10:00 (absolute +7 days would pair it with 09:00 or 11:00)
    before = {
        b.astimezone(tz) + WEEK: (i, o)
        for b, i, o in repo.series(
            conn, store_id, tz_name, lo - WEEK, hi - WEEK, bucket, whole_hours=whole
        )
    }
    points = []
    for b in starts:
        i, o = current.get(b, (0, 0))
        li, lo_ = before.get(b, (0, 0))
        points.append(s.FootfallPoint(start=b, in_count=i, out_count=o, last_week_in=li,
                                      last_week_out=lo_))  # fmt: skip
    total_in, total_out = sum(p.in_count for p in points), sum(p.out_count for p in points)
    week_in, week_out = sum(p.last_week_in for p in points), sum(p.last_week_out for p in points)
    totals = s.FootfallTotals(
        in_count=total_in, out_count=total_out, last_week_in=week_in, last_week_out=week_out,
        change_in_pct=change_pct(total_in, week_in),
    )  # fmt: skip
    return s.FootfallSeries(store_id=store_id, timezone=tz_name, bucket=bucket, start=lo, end=hi,
                            points=points, totals=totals)  # fmt: skip


def engagement(
    conn: Conn, *, store_id: str, start: datetime | None, end: datetime | None
) -> s.EngagementReport:
    """Shelf interactions and zone dwell over a range (default: today)."""
    _, tz = _tz(conn, store_id)
    lo, hi = resolve_range(start, end, tz, datetime.now(UTC))
    shelves = [
        s.ShelfStats(shelf_id=k, interactions=int(n), total_dwell_s=float(d),
                     avg_dwell_s=round(float(d) / n, 2) if n else 0.0)
        for k, n, d in repo.shelves(conn, store_id, lo, hi)
    ]  # fmt: skip
    zones = [
        s.ZoneDwell(zone_id=k, visits=int(n), avg_dwell_s=round(float(d) / n, 2) if n else 0.0,
                    peak_occupancy=int(p))
        for k, n, d, p in repo.zone_dwell(conn, store_id, lo, hi)
    ]  # fmt: skip
    return s.EngagementReport(store_id=store_id, start=lo, end=hi, shelves=shelves, zones=zones)


def demographics(
    conn: Conn, *, store_id: str, start: datetime | None, end: datetime | None
) -> s.DemographicsReport:
    """People by age band and gender over a range (default: today)."""
    _, tz = _tz(conn, store_id)
    lo, hi = resolve_range(start, end, tz, datetime.now(UTC))
    cells = [
        s.DemographicCell(age_band=a, gender=g, count=n)
        for a, g, n in repo.demographics(conn, store_id, lo, hi)
    ]
    by_zone: dict[str, dict[str, int]] = {}
    for zone_id, valence, n in repo.emotions(conn, store_id, lo, hi):
        by_zone.setdefault(zone_id, {})[valence] = n
    moods = []
    for zone_id, counts in by_zone.items():
        people = sum(counts.values())
        pos, neg = counts.get("positive", 0), counts.get("negative", 0)
        moods.append(
            s.EmotionZone(zone_id=zone_id, people=people, positive=pos,
                          neutral=counts.get("neutral", 0), negative=neg,
                          positive_share=round(pos / people, 4) if people else 0.0,
                          negative_share=round(neg / people, 4) if people else 0.0)
        )  # fmt: skip
    return s.DemographicsReport(store_id=store_id, start=lo, end=hi,
                                total=sum(c.count for c in cells), cells=cells,
                                emotions=moods)  # fmt: skip


def chain_live(conn: Conn) -> s.ChainLive:
    """Every store now, for headquarters."""
    stores = [
        s.ChainStoreLive(store_id=r[0], name=r[1], timezone=r[2], occupancy=int(r[3]),
                         in_today=int(r[4]), out_today=int(r[5]), devices_online=int(r[6]),
                         devices_total=int(r[7]))
        for r in repo.chain_live(conn)
    ]  # fmt: skip
    return s.ChainLive(occupancy=sum(x.occupancy for x in stores),
                       in_today=sum(x.in_today for x in stores), stores=stores)  # fmt: skip


def chain_footfall(
    conn: Conn, *, start: datetime | None, end: datetime | None, now: datetime | None = None
) -> s.ChainFootfall:
    """Footfall per store over a UTC range (default: the last 7 days) against last week."""
    hi_default = now or datetime.now(UTC)
    lo, hi = resolve_range(start or hi_default - WEEK, end or hi_default, ZoneInfo("UTC"),
                           hi_default)  # fmt: skip
    current = repo.chain_totals(conn, lo, hi)
    before = repo.chain_totals(conn, lo - WEEK, hi - WEEK)
    rows = [
        s.ChainStoreTotals(store_id=k, in_count=current.get(k, (0, 0))[0],
                           out_count=current.get(k, (0, 0))[1],
                           last_week_in=before.get(k, (0, 0))[0],
                           change_in_pct=change_pct(current.get(k, (0, 0))[0],
                                                    before.get(k, (0, 0))[0]))
        for k in sorted(set(current) | set(before))
    ]  # fmt: skip
    rows.sort(key=lambda r: (-r.in_count, r.store_id))
    return s.ChainFootfall(start=lo, end=hi, in_count=sum(r.in_count for r in rows),
                           last_week_in=sum(r.last_week_in for r in rows), stores=rows)  # fmt: skip
