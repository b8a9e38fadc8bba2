"""Retention cohorts: people grouped by the week or month of their first start event.

Period N of a person is floor((time - first start event) / unit). Retained in N: a return
event in N; unbounded: a return event in N or later. Revenue in N: crm_events.revenue of any
event and/or the person's POS transactions (one currency, reversals left out) from the first
start event on.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from psycopg import sql

from cloud.crm.analytics import repository as repo
from cloud.crm.analytics.repository import Conn, Params
from cloud.crm.analytics.schemas import Cohort, RetentionCell, RetentionQuery, RetentionResult

UNIT_SECONDS = {"day": 86400, "week": 7 * 86400}


def _cohorts(q: RetentionQuery, p: Params) -> sql.Composable:
    """CTEs `merged`, `cohort` (pk, c, first_t, eid) and `ret` (pk, c, n)."""
    unit = p(UNIT_SECONDS[q.unit])
    return sql.SQL(
        "WITH {merged}, firsts AS (SELECT DISTINCT ON (pk) pk, t AS first_t, eid FROM"
        " (SELECT {pk}, e.occurred_at AS t, e.id AS eid FROM crm_events e"
        " LEFT JOIN merged m ON m.id = e.profile_id"
        " WHERE e.occurred_at < {end} AND {has_person} AND {start_ev}) s"
        " ORDER BY pk, t, eid),"
        " cohort AS MATERIALIZED (SELECT pk, first_t, eid,"
        " date_trunc({cu}, first_t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS c"
        " FROM firsts WHERE first_t >= {start}),"
        " ret AS MATERIALIZED (SELECT c.pk, c.c,"
        " floor(extract(epoch FROM r.t - c.first_t) / {unit})::bigint AS n"
        " FROM cohort c JOIN (SELECT {pk}, e.occurred_at AS t, e.id AS eid FROM crm_events e"
        " LEFT JOIN merged m ON m.id = e.profile_id"
        " WHERE e.occurred_at >= {start} AND {has_person} AND {ret_ev}) r"
        " ON r.pk = c.pk AND (r.t, r.eid) > (c.first_t, c.eid))"
    ).format(
        merged=repo.MERGED_CTE,
        pk=repo.PERSON_KEY,
        end=p(q.end),
        start=p(q.start),
        has_person=repo.HAS_PERSON,
        start_ev=repo.matcher_sql(p, q.start_event),
        ret_ev=repo.matcher_sql(p, q.return_event),
        cu=p(q.cohort),
        unit=unit,
    )


def _revenue(q: RetentionQuery, p: Params) -> sql.Composable:
    """`UNION ALL` rows ('rev', c, n, amount) of the revenue sources `q` asks for."""
    unit = p(UNIT_SECONDS[q.unit])
    parts = []
    if q.revenue in ("events", "both"):
        parts.append(
            sql.SQL(
                " UNION ALL SELECT 'rev', c.c,"
                " floor(extract(epoch FROM r.t - c.first_t) / {u})::bigint,"
                " sum(r.revenue)::numeric FROM cohort c"
                " JOIN (SELECT {pk}, e.occurred_at AS t, e.revenue"
                " FROM crm_events e LEFT JOIN merged m ON m.id = e.profile_id"
                " WHERE e.occurred_at >= {start} AND e.revenue IS NOT NULL AND {has_person}) r"
                " ON r.pk = c.pk AND r.t >= c.first_t GROUP BY 2, 3"
            ).format(u=unit, pk=repo.PERSON_KEY, start=p(q.start), has_person=repo.HAS_PERSON)
        )
    if q.revenue in ("transactions", "both"):
        parts.append(
            sql.SQL(
                " UNION ALL SELECT 'rev', c.c,"
                " floor(extract(epoch FROM r.t - c.first_t) / {u})::bigint,"
                " sum(r.amount)::numeric FROM cohort c JOIN (SELECT"
                " COALESCE(m.root, x.profile_id)::text AS pk, x.occurred_at AS t,"
                " x.total_amount AS amount FROM crm_transactions x"
                " LEFT JOIN merged m ON m.id = x.profile_id WHERE x.occurred_at >= {start}"
                " AND x.currency = {cur} AND x.reversed_at IS NULL) r"
                " ON r.pk = c.pk AND r.t >= c.first_t GROUP BY 2, 3"
            ).format(u=unit, start=p(q.start), cur=p(q.currency))
        )
    return sql.Composed(parts)


def retention(conn: Conn, q: RetentionQuery) -> RetentionResult:
    """The cohorts of `q`, in time order, with periods 0 .. q.periods - 1."""
    checks = repo.matcher_checks("start_event", q.start_event)
    checks += repo.matcher_checks("return_event", q.return_event)
    repo.fast_reads(conn)
    repo.require_known(conn, checks, q.start, q.end)
    p = Params()
    query = _cohorts(q, p) + sql.SQL(
        " SELECT 'size', c, 0::bigint, count(*)::numeric FROM cohort GROUP BY c"
        " UNION ALL SELECT 'ret', c, n, count(DISTINCT pk) FROM ret WHERE n < {periods}"
        " GROUP BY c, n"
        " UNION ALL SELECT 'max', c, maxn, count(*) FROM"
        " (SELECT pk, c, max(n) AS maxn FROM ret GROUP BY pk, c) x GROUP BY c, maxn"
    ).format(periods=p(q.periods))
    query += _revenue(q, p)
    sizes: dict[datetime, int] = {}
    cells: dict[tuple[str, datetime], dict[int, Decimal]] = defaultdict(dict)
    for kind, c, n, value in conn.execute(query, p.values):
        if kind == "size":
            sizes[c] = int(value)
        else:
            row = cells[(kind, c)]
            row[int(n)] = row.get(int(n), Decimal(0)) + value
    cohorts = []
    for c in sorted(sizes):
        ret, most, rev = cells[("ret", c)], cells[("max", c)], cells[("rev", c)]
        periods = [
            RetentionCell(
                n=n,
                retained=int(ret.get(n, 0)),
                retained_unbounded=int(sum(v for m, v in most.items() if m >= n)),
                revenue=str(rev.get(n, Decimal(0))),
            )
            for n in range(q.periods)
        ]
        cohorts.append(Cohort(start=c, size=sizes[c], periods=periods))
    return RetentionResult(cohorts=cohorts)
