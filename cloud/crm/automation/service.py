"""Automation for the API: definitions (create, publish a version, validate, activate, pause,
archive), enrolment and removal, migrations of executions between versions, and per-customer
executions with "why here, what next". Callers own the transaction (the API commits)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from pydantic import JsonValue

from cloud.crm.automation import enrolment
from cloud.crm.automation import repository as repo
from cloud.crm.automation.definition import (
    ActionNode,
    ConditionNode,
    Definition,
    Node,
    SplitNode,
    WaitEventNode,
    WaitNode,
    as_json,
    successors,
)
from cloud.crm.automation.errors import (
    AutomationConflictError,
    AutomationInvalidError,
    AutomationNotFoundError,
)
from cloud.crm.automation.facts import explain as explain_condition
from cloud.crm.automation.repository import ExecutionRow, WorkflowRow
from cloud.crm.automation.validation import Problem, check_graph, check_references

Conn = psycopg.Connection[Any]


def problems(conn: Conn, d: Definition, *, workflow_id: int | None = None) -> list[Problem]:
    """Every problem of a definition: the graph's, then its references'."""
    graph = check_graph(d)
    return graph if graph else check_references(conn, d, workflow_id=workflow_id)


def check_graph_or_422(d: Definition) -> None:
    """The graph rules only (no database): a 422 naming the nodes."""
    found = check_graph(d)
    if found:
        names = ", ".join(sorted({p.node or "definition" for p in found}))
        raise AutomationInvalidError(
            f"the definition is invalid at: {names}", errors=[p.as_error() for p in found]
        )


def _valid(conn: Conn, d: Definition, *, workflow_id: int | None = None) -> None:
    found = problems(conn, d, workflow_id=workflow_id)
    if found:
        names = ", ".join(sorted({p.node or "definition" for p in found}))
        raise AutomationInvalidError(
            f"the definition is invalid at: {names}", errors=[p.as_error() for p in found]
        )


def _get(conn: Conn, workflow_id: int, *, lock: bool = False) -> WorkflowRow:
    wf = repo.get_workflow(conn, workflow_id, lock=lock)
    if wf is None:
        raise AutomationNotFoundError(f"workflow {workflow_id} does not exist")
    return wf


def create(conn: Conn, *, name: str, definition: Definition, actor: str) -> WorkflowRow:
    """A draft workflow with version 1 of its definition."""
    wid = repo.insert_workflow(conn, name=name, by=actor)
    _valid(conn, definition, workflow_id=wid)
    repo.insert_version(conn, wid, 1, as_json(definition), actor)
    return _get(conn, wid)


def get(conn: Conn, workflow_id: int) -> tuple[WorkflowRow, Definition]:
    """A workflow and its current definition."""
    wf = _get(conn, workflow_id)
    return wf, enrolment.definition_of(conn, workflow_id, wf.current_version)


def list_(conn: Conn, *, after: int, limit: int) -> list[WorkflowRow]:
    """Workflows by id."""
    return repo.list_workflows(conn, after=after, limit=limit)


def publish(conn: Conn, workflow_id: int, *, definition: Definition, actor: str) -> WorkflowRow:
    """Store the definition as a new version; new entries run it, executions in flight stay on
    their version until migrated."""
    wf = _get(conn, workflow_id, lock=True)
    _valid(conn, definition, workflow_id=workflow_id)
    repo.insert_version(conn, workflow_id, wf.current_version + 1, as_json(definition), actor)
    return _get(conn, workflow_id)


def set_status(conn: Conn, workflow_id: int, status: str) -> WorkflowRow:
    """Activate (the current version is validated again), pause or archive."""
    wf = _get(conn, workflow_id, lock=True)
    if status == "active":
        _valid(conn, enrolment.definition_of(conn, workflow_id, wf.current_version),
               workflow_id=workflow_id)  # fmt: skip
    repo.set_status(conn, workflow_id, status)
    return _get(conn, workflow_id) if status != "archived" else wf


def enrol_many(
    conn: Conn, workflow_id: int, *, profile_ids: list[int], now: datetime | None = None
) -> dict[int, int | None]:
    """API-call trigger: enrol each customer (None where already in or not allowed back)."""
    wf = _get(conn, workflow_id)
    if wf.status != "active":
        raise AutomationConflictError(f"workflow {workflow_id} is {wf.status}, not active")
    at = now or datetime.now(UTC)
    known = {int(r[0]) for r in conn.execute(
        "SELECT id FROM crm_profiles WHERE id = ANY(%s)", (profile_ids,)).fetchall()}  # fmt: skip
    missing = [p for p in profile_ids if p not in known]
    if missing:
        raise AutomationNotFoundError(f"customers {missing[:20]} do not exist")
    out: dict[int, int | None] = {}
    for pid in profile_ids:
        out[pid] = enrolment.enrol(conn, workflow_id=workflow_id, profile_id=pid, now=at,
                                   trigger={"kind": "api"})  # fmt: skip
    return out


def remove(conn: Conn, workflow_id: int, profile_id: int, *, actor: str) -> bool:
    """Take a customer out of the workflow now; nothing more is done for them in it."""
    _get(conn, workflow_id)
    return enrolment.remove(conn, workflow_id=workflow_id, profile_id=profile_id,
                            now=datetime.now(UTC), reason=f"removed by {actor}")  # fmt: skip


def migrate(
    conn: Conn,
    workflow_id: int,
    *,
    from_version: int,
    mapping: dict[str, str],
    now: datetime | None = None,
) -> int:
    """Move the live executions of `from_version` to the current version, each from its node
    to mapping[node]; a node with executions and no mapping, or a target the current version
    lacks, is a 422 naming it. Returns how many moved."""
    wf = _get(conn, workflow_id, lock=True)
    if from_version == wf.current_version:
        raise AutomationConflictError(f"version {from_version} is already the current one")
    if repo.get_definition(conn, workflow_id, from_version) is None:
        raise AutomationNotFoundError(f"workflow {workflow_id} has no version {from_version}")
    target = enrolment.definition_of(conn, workflow_id, wf.current_version)
    rows = repo.live_in_version(conn, workflow_id, from_version)
    errs = [Problem(n, "unmapped-node", f"executions wait at {n!r}; map it to a node of "
                    f"version {wf.current_version}") for n in sorted({r.node_id for r in rows})
            if n not in mapping]  # fmt: skip
    errs += [Problem(t, "unknown-node", f"version {wf.current_version} has no node {t!r}")
             for t in sorted(set(mapping.values())) if target.node(t) is None]  # fmt: skip
    if errs:
        raise AutomationInvalidError("the node mapping is incomplete or names unknown nodes",
                                     errors=[e.as_error() for e in errs])  # fmt: skip
    at = now or datetime.now(UTC)
    for ex in rows:
        to = mapping[ex.node_id]
        repo.set_version(conn, ex.id, wf.current_version, to)
        moved = repo.get_execution(conn, ex.id)
        assert moved is not None
        repo.log(conn, moved, to, "migrated", at,
                 detail=f"from version {from_version} node {ex.node_id}")  # fmt: skip
        repo.schedule(conn, ex.id, at)
    return len(rows)


def _describe(node: Node) -> str:
    if isinstance(node, ConditionNode):
        return f"condition: {explain_condition(node.condition)}"
    if isinstance(node, WaitNode):
        return (
            f"wait {node.seconds}s"
            if node.seconds is not None
            else f"wait until {node.until_local}"
        )
    if isinstance(node, WaitEventNode):
        return f"wait for {node.event} (timeout {node.timeout_s}s)"
    if isinstance(node, ActionNode):
        return f"action: {node.action.kind}"
    if isinstance(node, SplitNode):
        return "split: " + ", ".join(f"{b.name} {b.weight:g}" for b in node.branches)
    return node.type


def explain(conn: Conn, ex: ExecutionRow) -> dict[str, JsonValue]:
    """Why the customer is at this step (the path so far, the trigger) and what happens next."""
    d = enrolment.definition_of(conn, ex.workflow_id, ex.version)
    node = d.node(ex.node_id)
    path = [f"{r['node_id']}:{r['event']}" + (f"->{r['branch']}" if r["branch"] else "")
            for r in repo.step_log(conn, ex.id)]  # fmt: skip
    nxt: str
    if ex.status not in ("running", "waiting"):
        nxt = f"nothing: the execution is {ex.status} ({ex.exit_reason or 'holdout group'})"
    elif node is None:
        nxt = "unknown node"
    elif ex.status == "waiting" and ex.wait_until is not None:
        edges = ", ".join(f"{b} -> {t}" for b, t in successors(node)) or "end"
        nxt = f"{_describe(node)}; due {ex.wait_until.isoformat()}; then {edges}"
    else:
        nxt = f"{_describe(node)} runs now"
    why = f"entered by {ex.trigger.get('kind', '?')} at {ex.enrolled_at.isoformat()}"
    return {"why": why, "path": list(path), "next": nxt,
            "current": _describe(node) if node is not None else None}  # fmt: skip


def executions_of(conn: Conn, profile_id: int) -> list[tuple[ExecutionRow, dict[str, JsonValue]]]:
    """A customer's executions, newest first, each with its explanation."""
    return [(ex, explain(conn, ex)) for ex in repo.executions_of(conn, profile_id)]
