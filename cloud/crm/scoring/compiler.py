"""A programme's rules compiled to one set-based SQL statement: the full rescoring.

For every live profile with events (events of merged profiles count for the survivor), the
statement recomputes in the database what `scores.behaviour_reference` computes in Python:
matching events per rule numbered per (profile, rule, UTC day) in (time, id) order, each
awarded `sign * max(0, min(|points|, cap - (n - 1) * |points|))` (a once-only rule: only its
first event ever), decayed to `as_of` with the half-life; plus the activity counts, the fit from
the profile's attributes, the combined score with the stored prediction, and the MQL/SQL level
with hysteresis. It upserts crm_scores, appends history where the score moved, rebuilds the
recent rule counters (today, yesterday, once-only) the incremental consumer continues from, and
returns the profiles whose level changed.
"""

from __future__ import annotations

import json
from datetime import datetime

from psycopg import sql

from cloud.crm.scoring.rules import BehaviourRule, Filter, ProgrammeConfig

#: Run before `rescore_sql` in the same transaction: the counters are rebuilt from scratch.
DELETE_COUNTS = "DELETE FROM crm_score_rule_counts WHERE programme_id = %s"
_DAY_EXPR = sql.SQL("(occurred_at AT TIME ZONE 'UTC')::date")


def _jsonb(value: object) -> sql.Composable:
    return sql.SQL("{}::jsonb").format(sql.Literal(json.dumps(value)))


def filter_sql(col: sql.Composable, f: Filter) -> sql.Composable:
    """A boolean SQL expression for one filter on a jsonb column (rules.py semantics)."""
    key = sql.Literal(f.property)
    got = sql.SQL("({} -> {})").format(col, key)
    if f.op == "exists":
        return sql.SQL("({} ? {})").format(col, key)
    if f.op == "eq":
        return sql.SQL("coalesce({} = {}, false)").format(got, _jsonb(f.value))
    if f.op == "ne":
        return sql.SQL("NOT coalesce({} = {}, false)").format(got, _jsonb(f.value))
    if f.op == "in":
        assert isinstance(f.value, list)
        values = sql.SQL(", ").join(_jsonb(v) for v in f.value)
        return sql.SQL("coalesce({} IN ({}), false)").format(got, values)
    op = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[f.op]
    return sql.SQL(
        "(CASE WHEN jsonb_typeof({got}) = 'number' THEN ({col} ->> {key})::numeric {op} {v}"
        " ELSE false END)"
    ).format(got=got, col=col, key=key, op=sql.SQL(op), v=sql.Literal(f.value))


def _rule_sql(rule: BehaviourRule, half_life_s: float, as_of: sql.Composable) -> sql.Composable:
    cond = sql.SQL(" AND ").join(
        [sql.SQL("event = {}").format(sql.Literal(rule.event))]
        + [filter_sql(sql.SQL("properties"), f) for f in rule.filters]
    )
    size = abs(rule.points)
    sign = 1.0 if rule.points > 0 else -1.0
    part: sql.Composable
    if rule.repeat == "once":
        part, cap, where = sql.SQL("pid"), size, sql.SQL("rn = 1")
    else:
        part = sql.SQL("pid, {}").format(_DAY_EXPR)
        cap = rule.daily_cap if rule.daily_cap is not None else 1e300
        where = sql.SQL("true")
    day = sql.SQL("DATE '1970-01-01'") if rule.repeat == "once" else _DAY_EXPR
    return sql.SQL(
        "SELECT pid, {key}::text AS k, {day} AS day, award * {sign}::float8 AS award,"
        " award * {sign}::float8 * power(2::float8, -greatest(0::float8,"
        " extract(epoch FROM {as_of}::timestamptz - occurred_at)::float8) / {h}) AS pts"
        " FROM (SELECT pid, occurred_at, greatest(0::float8, least({size}::float8,"
        " {cap}::float8 - (row_number() OVER (PARTITION BY {part} ORDER BY occurred_at, id)"
        " - 1) * {size}::float8)) AS award,"
        " row_number() OVER (PARTITION BY {part} ORDER BY occurred_at, id) AS rn"
        " FROM ev WHERE {cond}) x WHERE {where} AND award > 0"
    ).format(
        key=sql.Literal(rule.key),
        as_of=as_of,
        day=day,
        sign=sql.Literal(sign),
        h=sql.Literal(half_life_s),
        size=sql.Literal(size),
        cap=sql.Literal(cap),
        part=part,
        cond=cond,
        where=where,
    )


def fit_sql(config: ProgrammeConfig, col: sql.Composable) -> sql.Composable:
    """The fit score (0-100) of a profile attributes column."""
    fields = config.fit.completeness_fields
    parts: list[sql.Composable] = []
    if fields:
        empty = sql.SQL("('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb, '{}'::jsonb)")
        filled = sql.SQL(" + ").join(
            sql.SQL("(CASE WHEN coalesce(({} -> {}) NOT IN {}, false) THEN 1 ELSE 0 END)").format(
                col, sql.Literal(f), empty
            )
            for f in fields
        )
        parts.append(
            sql.SQL("({})::float8 * {}::float8 / {}::float8").format(
                filled, sql.Literal(config.fit.completeness_points), sql.Literal(len(fields))
            )
        )
    for rule in config.fit.rules:
        parts.append(
            sql.SQL("(CASE WHEN {} THEN {}::float8 ELSE 0 END)").format(
                filter_sql(col, rule.filter), sql.Literal(rule.points)
            )
        )
    total = sql.SQL(" + ").join(parts) if parts else sql.SQL("0::float8")
    return sql.SQL("least(100::float8, greatest(0::float8, {}))").format(total)


def _combined_sql(config: ProgrammeConfig) -> sql.Composable:
    w = config.weights
    return sql.SQL(
        "round(least(100::float8, greatest(0::float8, CASE WHEN predictive IS NULL THEN"
        " ({wb} * behaviour + {wf} * fit) / nullif({wb} + {wf}, 0)"
        " ELSE ({wb} * behaviour + {wf} * fit + {wp} * predictive) / ({wb} + {wf} + {wp})"
        " END))::numeric, 4)::float8"
    ).format(
        wb=sql.Literal(float(w.behaviour)),
        wf=sql.Literal(float(w.fit)),
        wp=sql.Literal(float(w.predictive)),
    )


def _level_sql(config: ProgrammeConfig) -> sql.Composable:
    th = config.thresholds
    return sql.SQL(
        "CASE WHEN c >= {s} OR (old_level = 'sql' AND c >= {s} - {h}) THEN 'sql'"
        " WHEN c >= {m} OR (old_level IN ('mql', 'sql') AND c >= {m} - {h}) THEN 'mql'"
        " ELSE 'none' END"
    ).format(
        s=sql.Literal(float(th.sql)), m=sql.Literal(float(th.mql)), h=sql.Literal(th.hysteresis)
    )


def rescore_sql(
    config: ProgrammeConfig, *, programme: int, as_of: datetime, reason: str
) -> sql.Composed:
    """The full rescoring statement (values inlined as literals: no placeholders, so a `%` in
    a property name cannot be mistaken for one). Run `DELETE_COUNTS` first."""
    h = config.half_life_s
    at = sql.SQL("{}::timestamptz").format(sql.Literal(as_of.isoformat()))
    rules = [_rule_sql(r, h, at) for r in config.behaviour_rules]
    hits = (
        sql.SQL(" UNION ALL ").join(rules)
        if rules
        else sql.SQL(
            "SELECT NULL::bigint AS pid, NULL::text AS k, NULL::date AS day,"
            " NULL::float8 AS award, NULL::float8 AS pts WHERE false"
        )
    )
    return sql.SQL(_RESCORE).format(
        hits=hits,
        fit=fit_sql(config, sql.SQL("pr.attributes")),
        combined=_combined_sql(config),
        level=_level_sql(config),
        max_points=sql.Literal(config.behaviour_max_points),
        as_of=at,
        programme=sql.Literal(programme),
        reason=sql.Literal(reason),
    )


_RESCORE = """
WITH ev AS MATERIALIZED (
    SELECT coalesce(p.merged_into, p.id) AS pid, e.id, e.occurred_at, e.event, e.properties
    FROM crm_events e JOIN crm_profiles p ON p.id = e.profile_id
    WHERE e.profile_id IS NOT NULL
),
act AS (
    SELECT pid, count(*) AS n, min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
        sum(power(2::float8, -greatest(0::float8,
            extract(epoch FROM {as_of}::timestamptz - occurred_at)::float8) / 604800.0)) AS ew7,
        sum(power(2::float8, -greatest(0::float8,
            extract(epoch FROM {as_of}::timestamptz - occurred_at)::float8) / 2592000.0)) AS ew30
    FROM ev GROUP BY pid
),
hits AS MATERIALIZED ({hits}),
per_rule AS (SELECT pid, k, sum(pts) AS s FROM hits GROUP BY pid, k),
by_rule AS (
    SELECT pid, jsonb_object_agg(k, s) AS by_rule, sum(s) AS raw FROM per_rule GROUP BY pid
),
parts AS (
    SELECT a.pid, coalesce(b.by_rule, '{{}}'::jsonb) AS by_rule, coalesce(b.raw, 0) AS raw,
        a.n, a.first_seen, a.last_seen, a.ew7, a.ew30,
        least(100::float8, greatest(0::float8, 100 * coalesce(b.raw, 0) / {max_points}::float8))
            AS behaviour,
        {fit} AS fit, s.predictive, coalesce(s.level, 'none') AS old_level,
        s.combined AS old_combined
    FROM act a JOIN crm_profiles pr ON pr.id = a.pid
    LEFT JOIN by_rule b ON b.pid = a.pid
    LEFT JOIN crm_scores s ON s.programme_id = {programme} AND s.profile_id = a.pid
),
scored AS MATERIALIZED (SELECT p.*, {combined} AS c FROM parts p),
leveled AS MATERIALIZED (SELECT s.*, {level} AS level FROM scored s),
up AS (
    INSERT INTO crm_scores AS t (programme_id, profile_id, behaviour_raw, behaviour_at, behaviour,
        fit, predictive, combined, level, features, first_seen, last_event_at, updated_at)
    SELECT {programme}, pid, raw, {as_of}, behaviour, fit, predictive, c, level,
        jsonb_build_object('by_rule', by_rule, 'ew7', ew7, 'ew30', ew30, 'events', n),
        first_seen, last_seen, now()
    FROM leveled
    ON CONFLICT (programme_id, profile_id) DO UPDATE SET behaviour_raw = EXCLUDED.behaviour_raw,
        behaviour_at = EXCLUDED.behaviour_at, behaviour = EXCLUDED.behaviour,
        fit = EXCLUDED.fit, combined = EXCLUDED.combined, level = EXCLUDED.level,
        features = t.features || EXCLUDED.features, first_seen = EXCLUDED.first_seen,
        last_event_at = EXCLUDED.last_event_at, updated_at = now()
    RETURNING profile_id
),
hist AS (
    INSERT INTO crm_score_history (programme_id, profile_id, combined, behaviour, fit,
        predictive, reason, at)
    SELECT {programme}, pid, c, behaviour, fit, predictive, {reason}, {as_of}
    FROM leveled WHERE old_combined IS NULL OR abs(old_combined - c) >= 0.01
    RETURNING 1
),
counted AS (
    INSERT INTO crm_score_rule_counts (programme_id, profile_id, rule_key, day, hits, points)
    SELECT {programme}, pid, k, day, count(*), sum(abs(award)) FROM hits
    WHERE day = DATE '1970-01-01'
        OR day >= ({as_of}::timestamptz AT TIME ZONE 'UTC')::date - 1
    GROUP BY pid, k, day
    ON CONFLICT (programme_id, profile_id, rule_key, day) DO UPDATE
        SET hits = EXCLUDED.hits, points = EXCLUDED.points
    RETURNING 1
)
SELECT l.pid, l.old_level, l.level, l.c,
    (SELECT count(*) FROM up), (SELECT count(*) FROM hist), (SELECT count(*) FROM counted)
FROM leveled l
WHERE l.old_level <> l.level
UNION ALL
SELECT NULL, NULL, NULL, NULL, (SELECT count(*) FROM up), (SELECT count(*) FROM hist),
    (SELECT count(*) FROM counted)
"""
