"""Performance of a workflow (per node entered / completed / failed / waiting, per path, goal
conversion with time to convert against the holdout group) and the dry run of a definition
over real profiles (each profile's predicted path, in a transaction that is rolled back)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from pydantic import JsonValue

from cloud.crm.automation import enrolment, facts
from cloud.crm.automation.definition import (
    ActionNode,
    ConditionNode,
    Definition,
    EndNode,
    EntryNode,
    SplitNode,
    WaitEventNode,
    WaitNode,
)
from cloud.crm.automation.engine import exit_reason
from cloud.crm.automation.repository import ExecutionRow

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Group:
    """Goal conversion of one group (treated or holdout)."""

    enrolled: int
    converted: int
    rate: float | None
    mean_time_to_convert_s: float | None
    median_time_to_convert_s: float | None


def _group(conn: Conn, workflow_id: int, holdout: bool, goal: str | None) -> Group:
    if goal is None:
        row = conn.execute(
            "SELECT count(*) FROM automation_executions WHERE workflow_id = %s"
            " AND (status = 'holdout') = %s",
            (workflow_id, holdout),
        ).fetchone()
        n = int(row[0]) if row else 0
        return Group(n, 0, None, None, None)
    row = conn.execute(
        "WITH x AS (SELECT e.enrolled_at, CASE WHEN e.status = 'holdout' THEN"
        " (SELECT min(c.occurred_at) FROM crm_events c WHERE c.profile_id = e.profile_id"
        "  AND c.event = %(goal)s AND c.occurred_at >= e.enrolled_at)"
        " ELSE e.converted_at END AS conv"
        " FROM automation_executions e WHERE e.workflow_id = %(w)s"
        " AND (e.status = 'holdout') = %(h)s)"
        " SELECT count(*), count(conv), avg(extract(epoch FROM conv - enrolled_at)),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM conv - enrolled_at))"
        " FROM x",
        {"goal": goal, "w": workflow_id, "h": holdout},
    ).fetchone()
    assert row is not None
    n, conv = int(row[0]), int(row[1])
    mean = float(row[2]) if row[2] is not None else None
    med = float(row[3]) if row[3] is not None else None
    return Group(n, conv, conv / n if n else None, mean, med)


def statistics(conn: Conn, workflow_id: int, d: Definition) -> dict[str, Any]:
    """The workflow's figures over all its versions."""
    nodes: dict[str, dict[str, int]] = {
        n.id: {"entered": 0, "completed": 0, "failed": 0, "waiting": 0, "exited": 0}
        for n in d.nodes
    }
    for node, event, count in conn.execute(
        "SELECT node_id, event, count(*) FROM automation_step_log WHERE workflow_id = %s"
        " AND event IN ('entered', 'completed', 'failed', 'exited') GROUP BY 1, 2",
        (workflow_id,),
    ).fetchall():
        nodes.setdefault(node, {"entered": 0, "completed": 0, "failed": 0, "waiting": 0,
                                "exited": 0})[event] = int(count)  # fmt: skip
    for node, count in conn.execute(
        "SELECT node_id, count(*) FROM automation_executions WHERE workflow_id = %s"
        " AND status = 'waiting' GROUP BY 1",
        (workflow_id,),
    ).fetchall():
        nodes.setdefault(node, {"entered": 0, "completed": 0, "failed": 0, "waiting": 0,
                                "exited": 0})["waiting"] = int(count)  # fmt: skip
    paths = [
        {"node_id": r[0], "branch": r[1], "count": int(r[2])}
        for r in conn.execute(
            "SELECT node_id, branch, count(*) FROM automation_step_log WHERE workflow_id = %s"
            " AND event = 'completed' AND branch IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
            (workflow_id,),
        ).fetchall()
    ]
    statuses = dict(conn.execute(
        "SELECT status, count(*) FROM automation_executions WHERE workflow_id = %s GROUP BY 1",
        (workflow_id,)).fetchall())  # fmt: skip
    goal = d.goal.event if d.goal is not None else None
    return {
        "nodes": nodes,
        "paths": paths,
        "executions": {str(k): int(v) for k, v in statuses.items()},
        "goal": goal,
        "treated": _group(conn, workflow_id, False, goal),
        "holdout": _group(conn, workflow_id, True, goal),
    }


def _predict(
    conn: Conn, d: Definition, profile_id: int, now: datetime
) -> list[dict[str, JsonValue]]:
    fake = ExecutionRow(0, 0, 0, profile_id, "running", d.entry().id, 1, {}, None, None, {},
                        now, None, None, None, now)  # fmt: skip
    why = exit_reason(conn, d, fake, now)
    if why is not None:
        return [{"node_id": d.entry().id, "note": f"would leave at once: {why[0]}"}]
    out: list[dict[str, JsonValue]] = []
    node = d.node(d.entry().id)
    for _ in range(100):
        if node is None:
            break
        step: dict[str, JsonValue] = {"node_id": node.id, "type": node.type}
        nxt: str | None = None
        if isinstance(node, EntryNode | WaitNode):
            nxt = node.next
        elif isinstance(node, ConditionNode):
            yes = facts.holds(conn, node.condition, profile_id, now)
            step["branch"], nxt = ("yes", node.yes) if yes else ("no", node.no)
        elif isinstance(node, WaitEventNode):
            step["branch"], nxt = "timeout", node.timeout
            step["note"] = f"predicted unless {node.event} happens within {node.timeout_s}s"
        elif isinstance(node, SplitNode):
            draw = enrolment.unit_hash("dry", profile_id, node.id) * sum(
                b.weight for b in node.branches
            )
            acc, pick = 0.0, node.branches[-1]
            for b in node.branches:
                acc += b.weight
                if draw < acc:
                    pick = b
                    break
            step["branch"], nxt = pick.name, pick.next
            step["note"] = "random: one possible draw"
        elif isinstance(node, ActionNode):
            step["would"] = node.action.kind
            nxt = node.next
        else:
            assert isinstance(node, EndNode)
        out.append(step)
        node = d.node(nxt) if nxt is not None else None
    return out


def dry_run(
    conn: Conn, d: Definition, *, profile_ids: list[int] | None, sample: int
) -> list[dict[str, JsonValue]]:
    """Each sampled profile's predicted path now, with no side effect (read-only, rolled back)."""
    now = datetime.now(UTC)
    out: list[dict[str, JsonValue]] = []
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        if profile_ids is None:
            rows = conn.execute(
                "SELECT id FROM crm_profiles WHERE merged_into IS NULL"
                " ORDER BY md5(id::text) LIMIT %s",
                (sample,),
            ).fetchall()
            profile_ids = [int(r[0]) for r in rows]
        for pid in profile_ids:
            path = _predict(conn, d, pid, now)
            out.append({"profile_id": pid, "path": list(path)})
    return out
