"""Funnels compiled to one SQL pass per person, ordered by time (window functions).

strict order: A_k, the latest step-1 time from which steps 1..k can be done in order by a
row, is carried forward with one running max per step; a step-k row converts when its time
minus A_(k-1) of the rows before it fits the window (the latest entry is always the best
one). any order: for each row, the first time of each step at or after it (one backward
pass). Definitions and a worked example: docs/analytics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import sql

from cloud.crm.analytics import repository as repo
from cloud.crm.analytics.repository import Conn, Params
from cloud.crm.analytics.schemas import (
    ConversionTimes,
    DropoffQuery,
    DropoffResult,
    FunnelGroup,
    FunnelQuery,
    FunnelResult,
    FunnelStepResult,
    Person,
    TimeBucket,
)

#: Upper bounds (seconds) of the time-to-convert histogram; the last is the longest window.
TTC_BOUNDS = (60, 300, 900, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400,
              30 * 86400, 90 * 86400)  # fmt: skip
PERCENTILES = (0.25, 0.5, 0.75, 0.9)
_WINDOW = sql.SQL(
    "WINDOW w AS (PARTITION BY pid, anon ORDER BY t, eid"
    " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
)


def _source(q: FunnelQuery, p: Params) -> sql.Composable:
    """Rows that match any step, with one boolean per step, in [start, end + window)."""
    w = timedelta(seconds=q.window_seconds)
    steps = [repo.matcher_sql(p, s) for s in q.steps]
    if q.order == "strict":  # only a step-1 event inside the period enters the funnel
        steps[0] = sql.SQL("({} AND e.occurred_at < {})").format(steps[0], p(q.end))
    flags = [sql.SQL("{} AS s{}").format(c, sql.Literal(i + 1)) for i, c in enumerate(steps)]
    names = sorted({s.event for s in q.steps})
    return sql.SQL(
        "{merged}, ev AS (SELECT {person}, e.occurred_at AS t, e.id AS eid, {flags},"
        " {bval} AS bval FROM crm_events e LEFT JOIN merged m ON m.id = e.profile_id"
        " WHERE e.occurred_at >= {start} AND e.occurred_at < {horizon} AND e.event = ANY({names})"
        " AND {has_person} AND ({any_step}))"
    ).format(
        merged=repo.MERGED_CTE,
        person=repo.PERSON_COLS,
        flags=sql.SQL(", ").join(flags),
        bval=repo.breakdown_sql(p, q.breakdown),
        start=p(q.start),
        horizon=p(q.end + w),
        names=p(names),
        has_person=repo.HAS_PERSON,
        any_step=sql.SQL(" OR ").join(steps),
    )


def _strict(q: FunnelQuery, p: Params) -> sql.Composable:
    """Per row: `a`, the latest entry from which the steps so far end before the row, and
    `d`, the step the row completes; then per person the depth, the shortest conversion and
    the breakdown value. Each level carries only the columns, and the rows, later levels
    read (after the first, rows of step-1 events only are dropped but for each person's
    first; they have done their part in `a`)."""
    n, w = len(q.steps), p(timedelta(seconds=q.window_seconds))

    def keep(k: int) -> sql.Composable:  # the columns levels after step k still need
        rest = [sql.SQL(", s{}").format(sql.Literal(m)) for m in range(k + 1, n + 1)]
        return sql.SQL("pid, anon, t, eid, bval, {}{}").format(
            sql.SQL("f1" if k > 1 else "s1"), sql.Composed(rest)
        )

    def live(k: int) -> sql.Composable:  # rows step k and later levels still read
        steps = [sql.SQL("s{}").format(sql.Literal(m)) for m in range(k, n + 1)]
        return sql.SQL(" OR ").join([sql.SQL("f1"), sql.SQL("d IS NOT NULL"), *steps])

    # the first entry row of a person is an entry row with none before it (f1)
    body = sql.SQL(
        "SELECT {keep}, NULL::int AS d, max(CASE WHEN s1 THEN t END) OVER w AS a,"
        " s1 AND NOT COALESCE(bool_or(s1) OVER w, false) AS f1 FROM ev {win}"
    ).format(keep=keep(1), win=_WINDOW)
    for k in range(2, n):
        hit = sql.SQL("s{} AND t - a <= {}").format(sql.Literal(k), w)
        body = sql.SQL(
            "SELECT {keep}, d, max(c) OVER w AS a FROM (SELECT {keep},"
            " CASE WHEN {hit} THEN {k} ELSE d END AS d, CASE WHEN {hit} THEN a END AS c"
            " FROM ({body}) x{k} WHERE {live}) y{k} {win}"
        ).format(keep=keep(k), hit=hit, k=sql.Literal(k), body=body, live=live(k), win=_WINDOW)
    hit = sql.SQL("s{} AND t - a <= {}").format(sql.Literal(n), w)
    bval = sql.SQL("max(bval) FILTER (WHERE f1)" if q.breakdown else "NULL::text")
    return sql.SQL(
        "SELECT pid, anon, COALESCE(max(d), 1) AS depth,"
        " extract(epoch FROM min(span))::float8 AS ttc, {bval} AS bval"
        " FROM (SELECT pid, anon, f1, bval, CASE WHEN {hit} THEN {n} ELSE d END AS d,"
        " CASE WHEN {hit} THEN t - a END AS span FROM ({body}) z WHERE {live}) f"
        " GROUP BY pid, anon HAVING bool_or(f1)"
    ).format(bval=bval, hit=hit, n=sql.Literal(n), body=body, live=live(n))


def _any_order(q: FunnelQuery, p: Params) -> sql.Composable:
    """Per row: the first time of each step at or after it (a backward running min); the
    row starts a window in the period that holds steps 1..d."""
    n, w = len(q.steps), p(timedelta(seconds=q.window_seconds))
    firsts = sql.SQL(", ").join(
        sql.SQL("min(CASE WHEN s{k} THEN t END) OVER wr AS f{k}").format(k=sql.Literal(k))
        for k in range(1, n + 1)
    )
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN NOT COALESCE(f{k} <= t + {w}, false) THEN {d}").format(
            k=sql.Literal(k), w=w, d=sql.Literal(k - 1)
        )
        for k in range(1, n + 1)
    )
    fs = sql.SQL(", ").join(sql.SQL("f{}").format(sql.Literal(k)) for k in range(1, n + 1))
    last = sql.SQL("greatest({})").format(fs)
    return sql.SQL(
        "SELECT pid, anon, max(d) AS depth, extract(epoch FROM min(span))::float8 AS ttc,"
        " (array_agg(bval ORDER BY t, eid) FILTER (WHERE s1 AND t < {end}))[1] AS bval"
        " FROM (SELECT *, CASE WHEN t >= {end} THEN 0 {cases} ELSE {n} END AS d,"
        " CASE WHEN t < {end} AND num_nulls({fs}) = 0 AND {last} <= t + {w} THEN {last} - t"
        " END AS span"
        " FROM (SELECT *, {firsts} FROM ev WINDOW wr AS (PARTITION BY pid, anon"
        " ORDER BY t DESC, eid DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) r) f"
        " GROUP BY pid, anon HAVING max(d) >= 1"
    ).format(end=p(q.end), cases=cases, n=sql.Literal(n), last=last, w=w, firsts=firsts, fs=fs)


def per_person_sql(q: FunnelQuery, p: Params, *, materialized: bool = False) -> sql.Composable:
    """`WITH ..., pp AS (pid, anon, depth, ttc, bval) `: one row per person who entered."""
    inner = _strict(q, p) if q.order == "strict" else _any_order(q, p)
    mat = sql.SQL("MATERIALIZED " if materialized else "")
    return sql.SQL("WITH {}, pp AS {}({}) ").format(_source(q, p), mat, inner)


def _checks(q: FunnelQuery) -> list[tuple[str, list[str], str]]:
    out = [c for i, s in enumerate(q.steps) for c in repo.matcher_checks(f"steps.{i}", s)]
    if q.breakdown is not None:
        out.append(("breakdown", [q.steps[0].event], q.breakdown))
    return out


@dataclass
class _Tally:
    """Counts of one group while the summary rows are read."""

    depth: dict[int, int]
    hist: dict[int, int]
    pct: list[float | None]


def funnel(conn: Conn, q: FunnelQuery) -> FunnelResult:
    """The funnel of `q`: people per step, conversion, time to convert, per breakdown value."""
    repo.fast_reads(conn)
    repo.require_known(conn, _checks(q), q.start, q.end + timedelta(seconds=q.window_seconds))
    p = Params()
    bounds = p([float(b) for b in TTC_BOUNDS])
    # counts by a hash aggregate over everyone; percentiles (sorts) over converters only
    query = per_person_sql(q, p, materialized=True) + sql.SQL(
        "SELECT bval, depth, hb, false AS pct_row, count(*)::int AS n, NULL::float8[] AS pct"
        " FROM (SELECT bval, depth, CASE WHEN ttc IS NOT NULL THEN width_bucket(ttc, {b})"
        " - (ttc = ANY({b}))::int END AS hb FROM pp) s GROUP BY bval, depth, hb"
        " UNION ALL SELECT bval, grouping(bval), NULL, true, 0,"
        " percentile_cont({pcts}) WITHIN GROUP (ORDER BY ttc)"
        " FROM pp WHERE ttc IS NOT NULL GROUP BY ROLLUP (bval)"
    ).format(pcts=p(list(PERCENTILES)), b=bounds)
    total = _Tally({}, {}, [None] * len(PERCENTILES))
    groups: dict[str | None, _Tally] = {}
    for bval, depth, hb, pct_row, count, pct in conn.execute(query, p.values):
        if pct_row and depth == 1:  # the rollup's grand total
            total.pct = list(pct or total.pct)
            continue
        tally = groups.setdefault(bval, _Tally({}, {}, [None] * len(PERCENTILES)))
        if pct_row:
            tally.pct = list(pct or tally.pct)
            continue
        for t in (tally, total):
            t.depth[depth] = t.depth.get(depth, 0) + count
            if hb is not None:
                t.hist[hb] = t.hist.get(hb, 0) + count
    names = [s.event for s in q.steps]
    out = FunnelResult(total=_group(None, names, total), breakdown=[])
    if q.breakdown is not None:
        ordered = sorted(groups.items(), key=lambda kv: (-sum(kv[1].depth.values()), kv[0] or ""))
        out.breakdown = [_group(b, names, t) for b, t in ordered]
    return out


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _group(bval: str | None, names: list[str], t: _Tally) -> FunnelGroup:
    reached = [sum(c for d, c in t.depth.items() if d >= k) for k in range(1, len(names) + 1)]
    steps = [
        FunnelStepResult(
            step=k + 1,
            event=names[k],
            count=reached[k],
            conversion_from_first=_share(reached[k], reached[0]),
            conversion_from_previous=_share(reached[k], reached[k - 1] if k else reached[0]),
        )
        for k in range(len(names))
    ]
    hist = [TimeBucket(upto_seconds=b, count=t.hist.get(i, 0)) for i, b in enumerate(TTC_BOUNDS)]
    p25, p50, p75, p90 = t.pct
    times = ConversionTimes(
        count=reached[-1], p25=p25, median=p50, p75=p75, p90=p90, histogram=hist
    )
    return FunnelGroup(breakdown_value=bval, steps=steps, time_to_convert=times)


def dropoffs(conn: Conn, q: DropoffQuery) -> DropoffResult:
    """People who reached step `q.step` and not the next, ordered by profile then anonymous id."""
    repo.fast_reads(conn)
    repo.require_known(conn, _checks(q), q.start, q.end + timedelta(seconds=q.window_seconds))
    p = Params()
    query = per_person_sql(q, p) + sql.SQL(
        "SELECT pid, anon FROM pp WHERE depth = {} ORDER BY pid NULLS LAST, anon LIMIT {}"
    ).format(p(q.step), p(q.limit + 1))
    rows: list[Any] = conn.execute(query, p.values).fetchall()
    people = [Person(profile_id=r[0], anonymous_id=r[1]) for r in rows[: q.limit]]
    return DropoffResult(step=q.step, people=people, truncated=len(rows) > q.limit)
