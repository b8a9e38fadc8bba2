"""Paths: the events right after (or before) each person's first matching event."""

from __future__ import annotations

from psycopg import sql

from cloud.crm.analytics import repository as repo
from cloud.crm.analytics.repository import Conn, Params
from cloud.crm.analytics.schemas import PathCount, PathQuery, PathResult


def paths(conn: Conn, q: PathQuery) -> PathResult:
    """The `q.limit` most frequent sequences of `q.depth` named events in the period next to
    each person's first `q.event` there (one sequence per person; shorter where history ends)."""
    repo.fast_reads(conn)
    repo.require_known(conn, repo.matcher_checks("event", q.event), q.start, q.end)
    p = Params()
    fn = sql.SQL("lead" if q.direction == "after" else "lag")
    steps = range(1, q.depth + 1) if q.direction == "after" else range(q.depth, 0, -1)
    neighbours = sql.SQL(", ").join(
        sql.SQL("{}(event, {}) OVER w").format(fn, sql.Literal(k)) for k in steps
    )
    query = sql.SQL(
        "WITH {merged}, ev AS (SELECT {pk}, e.occurred_at AS t, e.id AS eid, e.event,"
        " {hit} AS hit FROM crm_events e LEFT JOIN merged m ON m.id = e.profile_id"
        " WHERE e.occurred_at >= {start} AND e.occurred_at < {end} AND e.event IS NOT NULL"
        " AND {has_person}),"
        " seq AS (SELECT pk, t, eid, hit, array_remove(ARRAY[{neighbours}], NULL) AS path"
        " FROM ev WINDOW w AS (PARTITION BY pk ORDER BY t, eid)),"
        " firsts AS (SELECT DISTINCT ON (pk) pk, path FROM seq WHERE hit ORDER BY pk, t, eid)"
        " SELECT NULL::text[], count(*) FROM firsts"
        " UNION ALL (SELECT path, count(*) FROM firsts GROUP BY path"
        ' ORDER BY 2 DESC, path COLLATE "C" LIMIT {limit})'
    ).format(
        merged=repo.MERGED_CTE,
        pk=repo.PERSON_KEY,
        hit=repo.matcher_sql(p, q.event),
        start=p(q.start),
        end=p(q.end),
        has_person=repo.HAS_PERSON,
        neighbours=neighbours,
        limit=p(q.limit),
    )
    rows = conn.execute(query, p.values).fetchall()
    people = int(rows[0][1]) if rows else 0
    found = [PathCount(events=list(path), people=int(n)) for path, n in rows[1:]]
    return PathResult(people=people, paths=found)
