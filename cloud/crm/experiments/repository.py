"""SQL of experiments: rows, sticky assignments, exposures and per-variant sufficient statistics.

The analysis never reads rows into Python: each metric is one statement returning, per variant,
the sums, sums of squares and cross sums of the per-customer values (see `metric_sums`).
Customers without any matching event or purchase contribute zeros, so the statement joins only
the customers who have one; the arm sizes come from `arm_sizes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from cloud.crm.experiments.schemas import AutomationSource, Measure, Metric
from cloud.crm.experiments.stats import ArmStats

Conn = psycopg.Connection[Any]
EXPOSURE_EVENT = "experiment.exposed"
EXPOSURE_SOURCE = "experiments"
SPLIT_TABLE = "automation_split_assignments"


@dataclass(frozen=True)
class ExperimentRow:
    """One stored experiment."""

    id: int
    key: str
    name: str
    description: str
    status: str
    design: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None


@dataclass(frozen=True)
class AssignmentRow:
    """A stored assignment (variant None: holdout)."""

    variant: int | None
    stratum: str | None
    assigned_at: datetime


_COLS = sql.SQL(
    "id, key, name, description, status, design, created_by, created_at, updated_at,"
    " started_at, stopped_at"
)


def insert(
    conn: Conn, *, key: str, name: str, description: str, design: dict[str, Any], actor: str
) -> ExperimentRow:
    """Store a draft."""
    q = sql.SQL(
        "INSERT INTO crm_experiments (key, name, description, design, created_by)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING {}"
    ).format(_COLS)
    with conn.cursor(row_factory=class_row(ExperimentRow)) as cur:
        row = cur.execute(q, (key, name, description, Jsonb(design), actor)).fetchone()
    assert row is not None
    return row


def get(conn: Conn, experiment_id: int, *, lock: bool = False) -> ExperimentRow | None:
    """A live experiment by id."""
    q = sql.SQL("SELECT {} FROM crm_experiments WHERE id = %s AND archived_at IS NULL{}").format(
        _COLS, sql.SQL(" FOR UPDATE") if lock else sql.SQL("")
    )
    with conn.cursor(row_factory=class_row(ExperimentRow)) as cur:
        return cur.execute(q, (experiment_id,)).fetchone()


def list_(conn: Conn, *, after: int, limit: int, status: str | None) -> list[ExperimentRow]:
    """Live experiments by id."""
    q = sql.SQL(
        "SELECT {} FROM crm_experiments WHERE archived_at IS NULL AND id > %s"
        " AND (%s::text IS NULL OR status = %s) ORDER BY id LIMIT %s"
    ).format(_COLS)
    with conn.cursor(row_factory=class_row(ExperimentRow)) as cur:
        return cur.execute(q, (after, status, status, limit)).fetchall()


def running_ids(conn: Conn) -> list[int]:
    """Ids of running experiments."""
    rows = conn.execute(
        "SELECT id FROM crm_experiments WHERE status = 'running'"
        " AND archived_at IS NULL ORDER BY id"
    ).fetchall()
    return [int(r[0]) for r in rows]


def update(conn: Conn, experiment_id: int, **fields: Any) -> None:
    """Set columns (name, description, design, status, started_at, stopped_at, archived_at)."""
    parts = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in fields]
    values = [Jsonb(v) if k == "design" else v for k, v in fields.items()]
    q = sql.SQL("UPDATE crm_experiments SET {}, updated_at = now() WHERE id = %s").format(
        sql.SQL(", ").join(parts)
    )
    conn.execute(q, (*values, experiment_id))


def running_in_namespace(conn: Conn, name: str, exclude: int) -> list[tuple[int, float, float]]:
    """(id, start, end) of the running experiments in a namespace."""
    rows = conn.execute(
        "SELECT id, (design->'namespace'->>'start')::float8, (design->'namespace'->>'end')::float8"
        " FROM crm_experiments WHERE status = 'running' AND archived_at IS NULL AND id <> %s"
        " AND design->'namespace'->>'name' = %s",
        (exclude, name),
    ).fetchall()
    return [(int(r[0]), float(r[1]), float(r[2])) for r in rows]


def segment_exists(conn: Conn, segment_id: int) -> bool:
    """Whether a live segment has this id."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM crm_segments WHERE id = %s AND archived_at IS NULL)",
        (segment_id,),
    ).fetchone()
    return bool(row and row[0])


def is_member(conn: Conn, segment_id: int, profile_id: int) -> bool:
    """Whether the profile is a current member of the segment."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM crm_segment_members WHERE segment_id = %s"
        " AND profile_id = %s AND exited_at IS NULL)",
        (segment_id, profile_id),
    ).fetchone()
    return bool(row and row[0])


def event_known(conn: Conn, event: str) -> bool:
    """Whether the event has been seen or is in a tracking plan."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM crm_events WHERE event = %s)"
        " OR EXISTS (SELECT 1 FROM crm_event_plans WHERE event = %s)",
        (event, event),
    ).fetchone()
    return bool(row and row[0])


def table_exists(conn: Conn, table: str) -> bool:
    """Whether a table exists (the automation feature's table is optional)."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def profile_attributes(conn: Conn, profile_id: int) -> dict[str, Any] | None:
    """The profile's attributes; None when there is no such profile."""
    row = conn.execute(
        "SELECT attributes FROM crm_profiles WHERE id = %s", (profile_id,)
    ).fetchone()
    return None if row is None else dict(row[0] or {})


def assignment(conn: Conn, experiment_id: int, profile_id: int) -> AssignmentRow | None:
    """The stored assignment of a customer."""
    with conn.cursor(row_factory=class_row(AssignmentRow)) as cur:
        return cur.execute(
            "SELECT variant, stratum, assigned_at FROM crm_experiment_assignments"
            " WHERE experiment_id = %s AND profile_id = %s",
            (experiment_id, profile_id),
        ).fetchone()


def next_arrival(conn: Conn, experiment_id: int, stratum: str) -> int:
    """Count one arrival in a stratum; returns its 0-based position (row-locked, so two
    concurrent customers never share a slot)."""
    row = conn.execute(
        "INSERT INTO crm_experiment_strata AS s (experiment_id, stratum, arrivals)"
        " VALUES (%s, %s, 1) ON CONFLICT (experiment_id, stratum)"
        " DO UPDATE SET arrivals = s.arrivals + 1 RETURNING arrivals - 1",
        (experiment_id, stratum),
    ).fetchone()
    assert row is not None
    return int(row[0])


def store_assignment(
    conn: Conn,
    experiment_id: int,
    profile_id: int,
    variant: int | None,
    stratum: str | None,
    at: datetime,
) -> bool:
    """Insert an assignment; False when the customer already had one (a concurrent call)."""
    row = conn.execute(
        "INSERT INTO crm_experiment_assignments"
        " (experiment_id, profile_id, variant, stratum, assigned_at) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        (experiment_id, profile_id, variant, stratum, at),
    ).fetchone()
    return row is not None


def insert_exposure(
    conn: Conn,
    *,
    experiment_id: int,
    key: str,
    profile_id: int,
    variant: int,
    variant_key: str,
    at: datetime,
) -> None:
    """The `experiment.exposed` event in the event stream (crm_events)."""
    conn.execute(
        "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
        " profile_id, properties) VALUES (%s, %s, %s, %s, 'track', %s, %s, %s)",
        (
            at,
            at,
            EXPOSURE_SOURCE,
            f"exp-{experiment_id}-{profile_id}",
            EXPOSURE_EVENT,
            profile_id,
            Jsonb(
                {
                    "experiment_id": experiment_id,
                    "experiment_key": key,
                    "variant": variant,
                    "variant_key": variant_key,
                }
            ),
        ),
    )


def _units(experiment_id: int, source: AutomationSource | None, keys: list[str]) -> sql.Composed:
    if source is None:
        return sql.SQL(
            "SELECT profile_id, variant, assigned_at AS t0 FROM crm_experiment_assignments"
            " WHERE experiment_id = {} AND variant IS NOT NULL"
        ).format(sql.Literal(experiment_id))
    # A customer who passed the node twice counts once, in the branch of the first pass.
    return sql.SQL(
        "SELECT DISTINCT ON (profile_id) profile_id,"
        " (array_position({keys}::text[], branch) - 1)::smallint AS variant, assigned_at AS t0"
        " FROM {table} WHERE workflow_id = {wf} AND node_id = {node}"
        " AND branch = ANY({keys}::text[]) ORDER BY profile_id, assigned_at"
    ).format(
        keys=sql.Literal(keys),
        table=sql.Identifier(SPLIT_TABLE),
        wf=sql.Literal(source.workflow_id),
        node=sql.Literal(source.node_id),
    )


def arm_sizes(
    conn: Conn, experiment_id: int, source: AutomationSource | None, keys: list[str]
) -> tuple[dict[int, int], int]:
    """Units per variant, and the holdout's size (0 for an automation source)."""
    counts: dict[int, int] = {}
    holdout = 0
    if source is None:
        rows = conn.execute(
            "SELECT variant, count(*) FROM crm_experiment_assignments WHERE experiment_id = %s"
            " GROUP BY variant",
            (experiment_id,),
        ).fetchall()
    else:
        q = sql.SQL("SELECT variant, count(*) FROM ({}) u GROUP BY variant").format(
            _units(experiment_id, source, keys)
        )
        rows = conn.execute(q).fetchall()
    for variant, n in rows:
        if variant is None:
            holdout = int(n)
        else:
            counts[int(variant)] = int(n)
    return counts, holdout


def _value(m: Measure) -> sql.Composable:
    if m.kind == "revenue":
        return sql.SQL(
            "(CASE WHEN s.kind = 'return' THEN -abs(s.total_amount)"
            " ELSE s.total_amount END)::float8"
        )
    if m.kind == "sum":
        path = sql.Literal((m.property or "").split("."))
        return sql.SQL(
            "CASE WHEN jsonb_typeof(s.properties #> {p}::text[]) = 'number'"
            " THEN (s.properties #>> {p}::text[])::float8 ELSE 0 END"
        ).format(p=path)
    return sql.SQL("1.0::float8")


def _columns(m: Measure, hours: int, i: int) -> list[sql.Composable]:
    """Per (variant, customer): measure i after exposure (x{i}) and before it (p{i}), both
    within `hours` of the exposure."""
    w = sql.SQL("make_interval(hours => {})").format(sql.Literal(hours))
    which = (
        sql.SQL("TRUE")
        if m.kind == "revenue"
        else sql.SQL("s.event = {}").format(sql.Literal(m.event))
    )
    post = sql.SQL("{} AND s.occurred_at >= u.t0 AND s.occurred_at < u.t0 + {}").format(which, w)
    pre = sql.SQL("{} AND s.occurred_at < u.t0 AND s.occurred_at >= u.t0 - {}").format(which, w)
    out: list[sql.Composable] = []
    for cond, name in ((post, f"x{i}"), (pre, f"p{i}")):
        if m.kind == "conversion":
            agg = sql.SQL("(count(*) FILTER (WHERE {}) > 0)::int::float8").format(cond)
        else:
            agg = sql.SQL("coalesce(sum({}) FILTER (WHERE {}), 0)").format(_value(m), cond)
        out.append(sql.SQL("{} AS {}").format(agg, sql.Identifier(name)))
    return out


def _side(measures: list[tuple[int, Measure, int]], revenue: bool) -> sql.Composed | None:
    """One join of the units with their events (or purchases), grouped per customer."""
    mine = [(i, m, h) for i, m, h in measures if (m.kind == "revenue") == revenue]
    if not mine:
        return None
    src: sql.Composable
    cols = sql.SQL(", ").join(c for i, m, h in mine for c in _columns(m, h, i))
    w = sql.SQL("make_interval(hours => {})").format(sql.Literal(max(h for _, _, h in mine)))
    if revenue:
        src = sql.SQL("crm_transactions s ON s.profile_id = u.profile_id AND s.reversed_at IS NULL")
    else:
        events = sorted({m.event or "" for _, m, _ in mine})
        src = sql.SQL(
            "crm_events s ON s.profile_id = u.profile_id AND s.event = ANY({}::text[])"
        ).format(sql.Literal(events))
    return sql.SQL(
        "SELECT u.variant, u.profile_id, {cols} FROM u JOIN {src}"
        " AND s.occurred_at >= u.t0 - {w} AND s.occurred_at < u.t0 + {w}"
        " GROUP BY u.variant, u.profile_id"
    ).format(cols=cols, src=src, w=w)


def metric_sums(conn: Conn, experiment_id: int, metrics: list[Metric],
                source: AutomationSource | None, keys: list[str],
                sizes: dict[int, int]) -> list[dict[int, ArmStats]]:  # fmt: skip
    """One statement for every metric: per variant, the sums the statistics need (see the
    module docstring). Events are joined once for all event measures, purchases once."""
    measures: list[tuple[int, Measure, int]] = []
    index: dict[tuple[str, str | None, str | None, int], int] = {}
    plan: list[list[int]] = []
    for metric in metrics:
        ids = []
        for _, m in metric.measures():
            key = (m.kind, m.event, m.property, metric.window_hours)
            if key not in index:
                index[key] = len(measures)
                measures.append((len(measures), m, metric.window_hours))
            ids.append(index[key])
        plan.append(ids)
    ev, rev = _side(measures, False), _side(measures, True)
    body: sql.Composable | None
    if ev is not None and rev is not None:
        body = sql.SQL("SELECT * FROM ({}) e FULL JOIN ({}) r USING (variant, profile_id)").format(
            ev, rev
        )
    else:
        body = ev if ev is not None else rev
    assert body is not None
    sums: list[sql.Composable] = []
    for ids in plan:
        x = sql.SQL("coalesce({}, 0)").format(sql.Identifier(f"x{ids[0]}"))
        pre: sql.Composable = sql.SQL("coalesce({}, 0)").format(sql.Identifier(f"p{ids[0]}"))
        y: sql.Composable = (
            sql.SQL("coalesce({}, 0)").format(sql.Identifier(f"x{ids[1]}"))
            if len(ids) == 2
            else sql.SQL("0::float8")
        )
        if len(ids) == 2:
            pre = sql.SQL("0::float8")  # no CUPED on ratio metrics
        for a, b in ((x, None), (x, x), (y, None), (y, y), (x, y), (pre, None), (pre, pre),
                     (x, pre)):  # fmt: skip
            term = a if b is None else sql.SQL("{} * {}").format(a, b)
            sums.append(sql.SQL("sum({})").format(term))
    q = sql.SQL(
        "WITH u AS NOT MATERIALIZED ({units}) SELECT variant, {sums} FROM ({body}) m"
        " GROUP BY variant"
    ).format(units=_units(experiment_id, source, keys), sums=sql.SQL(", ").join(sums), body=body)
    found = {int(r[0]): [float(v or 0) for v in r[1:]] for r in conn.execute(q).fetchall()}
    out = []
    for k in range(len(metrics)):
        arms = {}
        for variant, n in sizes.items():
            row = found.get(variant, [0.0] * (8 * len(metrics)))
            arms[variant] = ArmStats(n, *row[8 * k : 8 * k + 8])
        out.append(arms)
    return out


def save_snapshot(
    conn: Conn, experiment_id: int, day: date, at: datetime, results: dict[str, Any]
) -> None:
    """Upsert the day's results."""
    conn.execute(
        "INSERT INTO crm_experiment_snapshots (experiment_id, day, taken_at, results)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (experiment_id, day)"
        " DO UPDATE SET taken_at = EXCLUDED.taken_at, results = EXCLUDED.results",
        (experiment_id, day, at, Jsonb(results)),
    )


def snapshots(conn: Conn, experiment_id: int, days: int) -> list[tuple[date, datetime, Any]]:
    """Stored snapshots of the last `days` days, oldest first."""
    rows = conn.execute(
        "SELECT day, taken_at, results FROM crm_experiment_snapshots WHERE experiment_id = %s"
        " AND day > current_date - %s ORDER BY day",
        (experiment_id, days),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]
