"""Trends: events or unique people per UTC day, week or month, optionally by a property."""

from __future__ import annotations

from collections import defaultdict

from psycopg import sql

from cloud.crm.analytics import repository as repo
from cloud.crm.analytics.repository import Conn, Params
from cloud.crm.analytics.schemas import TrendPoint, TrendQuery, TrendResult, TrendSeries


def trends(conn: Conn, q: TrendQuery) -> TrendResult:
    """Series of `q`: one per top breakdown value (most first), then 'other', buckets in order."""
    checks = repo.matcher_checks("event", q.event)
    if q.breakdown is not None:
        checks.append(("breakdown", [q.event.event], q.breakdown))
    repo.fast_reads(conn)
    repo.require_known(conn, checks, q.start, q.end)
    p = Params()
    measure = sql.SQL("count(*)" if q.measure == "events" else "count(DISTINCT pk)")
    query = sql.SQL(
        "WITH {merged}, ev AS (SELECT {pk}, {bval} AS bval,"
        " date_trunc({iv}, e.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS b"
        " FROM crm_events e LEFT JOIN merged m ON m.id = e.profile_id"
        " WHERE e.occurred_at >= {start} AND e.occurred_at < {end} AND {hit}),"
        " top AS (SELECT bval IS NULL AS isnull, COALESCE(bval, '') AS key, bval,"
        ' row_number() OVER (ORDER BY m DESC, bval COLLATE "C" NULLS LAST) AS r'
        " FROM (SELECT bval, {measure} AS m FROM ev GROUP BY bval) x),"
        " lab AS (SELECT ev.pk, ev.b, CASE WHEN top.r <= {k} THEN ev.bval END AS label,"
        " top.r > {k} AS other, least(top.r, {k} + 1) AS r FROM ev JOIN top"
        " ON top.isnull = (ev.bval IS NULL) AND top.key = COALESCE(ev.bval, ''))"
        " SELECT label, other, r, b, {measure} FROM lab"
        " GROUP BY GROUPING SETS ((label, other, r, b), (label, other, r))"
    ).format(
        merged=repo.MERGED_CTE,
        pk=repo.PERSON_KEY,
        bval=repo.breakdown_sql(p, q.breakdown),
        iv=p(q.interval),
        start=p(q.start),
        end=p(q.end),
        hit=repo.matcher_sql(p, q.event),
        measure=measure,
        k=p(q.breakdown_limit),
    )
    totals: dict[int, tuple[str | None, bool, int]] = {}
    points: dict[int, list[TrendPoint]] = defaultdict(list)
    for label, other, r, b, value in conn.execute(query, p.values):
        if b is None:
            totals[r] = (label, other, int(value))
        else:
            points[r].append(TrendPoint(start=b, value=int(value)))
    series = [
        TrendSeries(
            breakdown_value=label,
            other=other,
            total=total,
            points=sorted(points[r], key=lambda pt: pt.start),
        )
        for r, (label, other, total) in sorted(totals.items())
    ]
    return TrendResult(series=series)
