"""SQL of automation: workflows and versions, executions, the due table, the action journal,
the step log and split assignments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from pydantic import JsonValue

from cloud.crm.automation.metrics import ACTIONS, STEPS

Conn = psycopg.Connection[Any]
LIVE = ("running", "waiting", "holdout")


@dataclass(frozen=True)
class WorkflowRow:
    """One workflow."""

    id: int
    name: str
    status: str
    current_version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_fired_at: datetime | None


@dataclass(frozen=True)
class ExecutionRow:
    """One execution (a customer in one version of a workflow)."""

    id: int
    workflow_id: int
    version: int
    profile_id: int
    status: str
    node_id: str
    visit: int
    visits: dict[str, int]
    wait_since: datetime | None
    wait_until: datetime | None
    trigger: dict[str, Any]
    enrolled_at: datetime
    finished_at: datetime | None
    exit_reason: str | None
    converted_at: datetime | None
    updated_at: datetime


_WF = "id, name, status, current_version, created_by, created_at, updated_at, last_fired_at"
_EX = (
    "id, workflow_id, version, profile_id, status, node_id, visit, visits, wait_since,"
    " wait_until, trigger, enrolled_at, finished_at, exit_reason, converted_at, updated_at"
)


def insert_workflow(conn: Conn, *, name: str, by: str) -> int:
    """A new draft workflow; returns its id."""
    row = conn.execute(
        "INSERT INTO automation_workflows (name, created_by) VALUES (%s, %s) RETURNING id",
        (name, by),
    ).fetchone()
    assert row is not None
    return int(row[0])


def insert_version(
    conn: Conn, workflow_id: int, version: int, definition: dict[str, JsonValue], by: str
) -> None:
    """Store a published version and make it current."""
    conn.execute(
        "INSERT INTO automation_versions (workflow_id, version, definition, published_by)"
        " VALUES (%s, %s, %s, %s)",
        (workflow_id, version, Jsonb(definition), by),
    )
    conn.execute(
        "UPDATE automation_workflows SET current_version = %s, updated_at = now() WHERE id = %s",
        (version, workflow_id),
    )


def get_workflow(conn: Conn, workflow_id: int, *, lock: bool = False) -> WorkflowRow | None:
    """A workflow that is not archived, or None."""
    q = f"SELECT {_WF} FROM automation_workflows WHERE id = %s AND status <> 'archived'"
    with conn.cursor(row_factory=class_row(WorkflowRow)) as cur:
        return cur.execute(q + (" FOR UPDATE" if lock else ""), (workflow_id,)).fetchone()


def list_workflows(conn: Conn, *, after: int, limit: int) -> list[WorkflowRow]:
    """Workflows by id."""
    q = (
        f"SELECT {_WF} FROM automation_workflows WHERE status <> 'archived' AND id > %s"
        " ORDER BY id LIMIT %s"
    )
    with conn.cursor(row_factory=class_row(WorkflowRow)) as cur:
        return cur.execute(q, (after, limit)).fetchall()


def active_workflows(conn: Conn) -> list[tuple[int, int, dict[str, Any], datetime | None]]:
    """(id, current version, its definition, last fired) of every active workflow."""
    rows = conn.execute(
        "SELECT w.id, w.current_version, v.definition, w.last_fired_at FROM automation_workflows w"
        " JOIN automation_versions v ON v.workflow_id = w.id AND v.version = w.current_version"
        " WHERE w.status = 'active' ORDER BY w.id"
    ).fetchall()
    return [(int(r[0]), int(r[1]), r[2], r[3]) for r in rows]


def set_status(conn: Conn, workflow_id: int, status: str) -> None:
    """Change a workflow's status."""
    conn.execute(
        "UPDATE automation_workflows SET status = %s, updated_at = now() WHERE id = %s",
        (status, workflow_id),
    )


def set_fired(conn: Conn, workflow_id: int, at: datetime) -> None:
    """Remember when a schedule or date trigger last fired."""
    conn.execute(
        "UPDATE automation_workflows SET last_fired_at = %s WHERE id = %s", (at, workflow_id)
    )


def get_definition(conn: Conn, workflow_id: int, version: int) -> dict[str, Any] | None:
    """The stored definition of a version."""
    row = conn.execute(
        "SELECT definition FROM automation_versions WHERE workflow_id = %s AND version = %s",
        (workflow_id, version),
    ).fetchone()
    return row[0] if row else None


def versions(conn: Conn, workflow_id: int) -> list[tuple[int, str, datetime]]:
    """(version, published by, when) of a workflow, oldest first."""
    rows = conn.execute(
        "SELECT version, published_by, published_at FROM automation_versions"
        " WHERE workflow_id = %s ORDER BY version",
        (workflow_id,),
    ).fetchall()
    return [(int(r[0]), r[1], r[2]) for r in rows]


# --- executions -------------------------------------------------------------------------------


def last_execution(conn: Conn, workflow_id: int, profile_id: int) -> ExecutionRow | None:
    """The customer's newest execution of the workflow (any version), or None."""
    q = (
        f"SELECT {_EX} FROM automation_executions WHERE workflow_id = %s AND profile_id = %s"
        " ORDER BY enrolled_at DESC, id DESC LIMIT 1"
    )
    with conn.cursor(row_factory=class_row(ExecutionRow)) as cur:
        return cur.execute(q, (workflow_id, profile_id)).fetchone()


def insert_execution(
    conn: Conn,
    *,
    workflow_id: int,
    version: int,
    profile_id: int,
    status: str,
    node_id: str,
    trigger: dict[str, JsonValue],
    at: datetime,
) -> ExecutionRow | None:
    """A new execution; None when the customer already has a live one in this workflow."""
    with conn.cursor(row_factory=class_row(ExecutionRow)) as cur:
        return cur.execute(
            "INSERT INTO automation_executions (workflow_id, version, profile_id, status, node_id,"
            " visits, trigger, enrolled_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING "
            + _EX,
            (
                workflow_id, version, profile_id, status, node_id, Jsonb({node_id: 1}),
                Jsonb(trigger), at, at,
            ),
        ).fetchone()  # fmt: skip


def get_execution(conn: Conn, execution_id: int, *, lock: bool = False) -> ExecutionRow | None:
    """One execution; `lock` holds its row until commit."""
    q = f"SELECT {_EX} FROM automation_executions WHERE id = %s"
    with conn.cursor(row_factory=class_row(ExecutionRow)) as cur:
        return cur.execute(q + (" FOR UPDATE" if lock else ""), (execution_id,)).fetchone()


def executions_of(conn: Conn, profile_id: int, limit: int = 100) -> list[ExecutionRow]:
    """A customer's executions, newest first."""
    q = (
        f"SELECT {_EX} FROM automation_executions WHERE profile_id = %s"
        " ORDER BY enrolled_at DESC, id DESC LIMIT %s"
    )
    with conn.cursor(row_factory=class_row(ExecutionRow)) as cur:
        return cur.execute(q, (profile_id, limit)).fetchall()


def live_execution(conn: Conn, workflow_id: int, profile_id: int) -> int | None:
    """The id of the customer's live execution of the workflow."""
    row = conn.execute(
        "SELECT id FROM automation_executions WHERE workflow_id = %s AND profile_id = %s"
        " AND status = ANY(%s)",
        (workflow_id, profile_id, list(LIVE)),
    ).fetchone()
    return int(row[0]) if row else None


def move(
    conn: Conn,
    execution_id: int,
    *,
    node_id: str,
    visit: int,
    visits: dict[str, int],
    status: str,
    wait_since: datetime | None,
    wait_until: datetime | None,
    at: datetime,
) -> None:
    """Write the execution's position."""
    conn.execute(
        "UPDATE automation_executions SET node_id = %s, visit = %s, visits = %s, status = %s,"
        " wait_since = %s, wait_until = %s, updated_at = %s WHERE id = %s",
        (node_id, visit, Jsonb(visits), status, wait_since, wait_until, at, execution_id),
    )


def finish(
    conn: Conn, execution_id: int, *, status: str, reason: str, at: datetime, converted: bool
) -> None:
    """End an execution (completed, converted, exited, failed) and drop its timer."""
    conn.execute(
        "UPDATE automation_executions SET status = %s, exit_reason = %s, finished_at = %s,"
        " converted_at = CASE WHEN %s THEN %s ELSE converted_at END, wait_until = NULL,"
        " updated_at = %s WHERE id = %s",
        (status, reason, at, converted, at, at, execution_id),
    )
    conn.execute("DELETE FROM automation_due WHERE execution_id = %s", (execution_id,))


def live_in_version(conn: Conn, workflow_id: int, version: int) -> list[ExecutionRow]:
    """Live executions of one version (for a migration), locked."""
    q = (
        f"SELECT {_EX} FROM automation_executions WHERE workflow_id = %s AND version = %s"
        " AND status IN ('running', 'waiting') ORDER BY id FOR UPDATE"
    )
    with conn.cursor(row_factory=class_row(ExecutionRow)) as cur:
        return cur.execute(q, (workflow_id, version)).fetchall()


def set_version(conn: Conn, execution_id: int, version: int, node_id: str) -> None:
    """Move an execution to another version's node (a migration)."""
    conn.execute(
        "UPDATE automation_executions SET version = %s, node_id = %s, updated_at = now()"
        " WHERE id = %s",
        (version, node_id, execution_id),
    )


# --- the due table ----------------------------------------------------------------------------


def schedule(conn: Conn, execution_id: int, due_at: datetime) -> None:
    """Make the execution due at `due_at` (releasing any lease)."""
    conn.execute(
        "INSERT INTO automation_due (execution_id, due_at) VALUES (%s, %s)"
        " ON CONFLICT (execution_id) DO UPDATE SET due_at = EXCLUDED.due_at, lease_until = NULL",
        (execution_id, due_at),
    )


def unschedule(conn: Conn, execution_id: int) -> None:
    """No timer for the execution."""
    conn.execute("DELETE FROM automation_due WHERE execution_id = %s", (execution_id,))


def claim_due(conn: Conn, *, now: datetime, lease_until: datetime, limit: int) -> list[int]:
    """Lease up to `limit` executions due by `now` that no live worker holds (SKIP LOCKED);
    returns their ids, earliest due first."""
    rows = conn.execute(
        "UPDATE automation_due d SET lease_until = %(lease)s FROM ("
        " SELECT execution_id FROM automation_due WHERE due_at <= %(now)s"
        " AND (lease_until IS NULL OR lease_until <= %(now)s)"
        " ORDER BY due_at LIMIT %(n)s FOR UPDATE SKIP LOCKED) c"
        " WHERE d.execution_id = c.execution_id RETURNING d.execution_id, d.due_at",
        {"now": now, "lease": lease_until, "n": limit},
    ).fetchall()
    return [int(r[0]) for r in sorted(rows, key=lambda r: (r[1], r[0]))]


def wake_waiting(conn: Conn, profile_ids: list[int], events: list[str], at: datetime) -> int:
    """Executions of these customers waiting for one of these events become due now."""
    cur = conn.execute(
        "INSERT INTO automation_due (execution_id, due_at)"
        " SELECT e.id, %(at)s FROM automation_executions e"
        " JOIN automation_versions v ON v.workflow_id = e.workflow_id AND v.version = e.version"
        " WHERE e.status = 'waiting' AND e.profile_id = ANY(%(p)s)"
        " AND (v.definition->'goal'->>'event' = ANY(%(ev)s) OR EXISTS ("
        "  SELECT 1 FROM jsonb_array_elements(v.definition->'nodes') n"
        "  WHERE n->>'id' = e.node_id AND n->>'type' = 'wait_event' AND n->>'event' = ANY(%(ev)s)))"
        " ON CONFLICT (execution_id) DO UPDATE SET due_at = LEAST(automation_due.due_at,"
        " EXCLUDED.due_at)",
        {"at": at, "p": profile_ids, "ev": events},
    )
    return cur.rowcount


def due_count(conn: Conn) -> int:
    """How many executions have a timer."""
    row = conn.execute("SELECT count(*) FROM automation_due").fetchone()
    return int(row[0]) if row else 0


# --- journal, log, splits ---------------------------------------------------------------------


def journal_get(conn: Conn, key: str) -> tuple[bool, dict[str, Any]] | None:
    """(ok, outcome) of the action with this idempotency key, if it was taken."""
    row = conn.execute(
        "SELECT ok, outcome FROM automation_actions WHERE idem_key = %s", (key,)
    ).fetchone()
    return (bool(row[0]), row[1]) if row else None


def journal_put(
    conn: Conn,
    key: str,
    *,
    execution_id: int,
    node_id: str,
    kind: str,
    ok: bool,
    outcome: dict[str, JsonValue],
    at: datetime,
) -> None:
    """Record an action's outcome under its key (in the transaction of its effect)."""
    ACTIONS.labels(kind, "true" if ok else "false").inc()
    conn.execute(
        "INSERT INTO automation_actions (idem_key, execution_id, node_id, kind, ok, outcome, at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (key, execution_id, node_id, kind, ok, Jsonb(outcome), at),
    )


def log(
    conn: Conn,
    ex: ExecutionRow,
    node_id: str,
    event: str,
    at: datetime,
    *,
    branch: str | None = None,
    detail: str = "",
) -> None:
    """Append one step event."""
    STEPS.labels(event).inc()
    conn.execute(
        "INSERT INTO automation_step_log (execution_id, workflow_id, version, node_id, event,"
        " branch, detail, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (ex.id, ex.workflow_id, ex.version, node_id, event, branch, detail[:500], at),
    )


def log_many(
    conn: Conn, ex: ExecutionRow, rows: list[tuple[str, str, str | None, str]], at: datetime
) -> None:
    """Append (node, event, branch, detail) step events in one statement."""
    for _, event, _, _ in rows:
        STEPS.labels(event).inc()
    conn.execute(
        "INSERT INTO automation_step_log (execution_id, workflow_id, version, node_id, event,"
        " branch, detail, at) SELECT %s, %s, %s, n, e, b, d, %s"
        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) WITH ORDINALITY"
        " AS t(n, e, b, d, i) ORDER BY i",
        (
            ex.id, ex.workflow_id, ex.version, at, [r[0] for r in rows], [r[1] for r in rows],
            [r[2] for r in rows], [r[3][:500] for r in rows],
        ),
    )  # fmt: skip


def lock_execution(conn: Conn, execution_id: int) -> tuple[ExecutionRow, str] | None:
    """Lock one execution; with its workflow's status."""
    q = (
        "SELECT e.id, e.workflow_id, e.version, e.profile_id, e.status, e.node_id, e.visit,"
        " e.visits, e.wait_since, e.wait_until, e.trigger, e.enrolled_at, e.finished_at,"
        " e.exit_reason, e.converted_at, e.updated_at, w.status FROM automation_executions e"
        " JOIN automation_workflows w ON w.id = e.workflow_id WHERE e.id = %s FOR UPDATE OF e"
    )
    row = conn.execute(q, (execution_id,)).fetchone()
    if row is None:
        return None
    return ExecutionRow(*row[:16]), str(row[16])


def step_log(conn: Conn, execution_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """An execution's step events, oldest first."""
    rows = conn.execute(
        "SELECT node_id, event, branch, detail, at FROM automation_step_log"
        " WHERE execution_id = %s ORDER BY id LIMIT %s",
        (execution_id, limit),
    ).fetchall()
    keys = ("node_id", "event", "branch", "detail", "at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def assign_split(conn: Conn, ex: ExecutionRow, node_id: str, branch: str, at: datetime) -> str:
    """Record the branch once; returns the recorded branch (the first one on a retry)."""
    conn.execute(
        "INSERT INTO automation_split_assignments (execution_id, workflow_id, version, node_id,"
        " profile_id, branch, assigned_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (ex.id, ex.workflow_id, ex.version, node_id, ex.profile_id, branch, at),
    )
    row = conn.execute(
        "SELECT branch FROM automation_split_assignments WHERE execution_id = %s AND node_id = %s",
        (ex.id, node_id),
    ).fetchone()
    assert row is not None
    return str(row[0])
