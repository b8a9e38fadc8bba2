"""Graph rules of a definition, each problem naming its node: one entry, unique ids, edges to
known nodes, every node reachable, no cycle without a wait, a timeout on every wait for an
event, and (against the database) templates, segments and workflows that exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from cloud.crm.automation.definition import (
    ActionNode,
    ConditionNode,
    Definition,
    EntryNode,
    SegmentAction,
    SegmentCondition,
    SegmentTrigger,
    SendAction,
    SplitNode,
    WaitEventNode,
    WaitNode,
    WorkflowAction,
    is_wait,
    successors,
)

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Problem:
    """One rule a definition breaks, at one node (None: the definition as a whole)."""

    node: str | None
    code: str
    message: str

    def as_error(self) -> dict[str, Any]:
        """The problem body's `errors` entry."""
        field = f"nodes.{self.node}" if self.node is not None else "definition"
        return {"field": field, "node": self.node, "code": self.code, "message": self.message}


def _shape(d: Definition) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for n in d.nodes:
        if n.id in seen:
            out.append(Problem(n.id, "duplicate-id", f"node id {n.id!r} is used twice"))
        seen.add(n.id)
        if isinstance(n, WaitEventNode) and n.timeout_s is None:
            out.append(Problem(n.id, "wait-without-timeout", "a wait for an event needs timeout_s"))
        if isinstance(n, WaitNode) and (n.seconds is None) == (n.until_local is None):
            out.append(
                Problem(n.id, "wait-shape", "a wait needs exactly one of seconds, until_local")
            )
        if isinstance(n, SplitNode) and len({b.name for b in n.branches}) != len(n.branches):
            out.append(Problem(n.id, "duplicate-branch", "split branch names must be unique"))
        for branch, target in successors(n):
            if target not in {m.id for m in d.nodes}:
                out.append(
                    Problem(n.id, "unknown-node", f"{branch} leads to unknown node {target!r}")
                )
    entries = [n.id for n in d.nodes if isinstance(n, EntryNode)]
    if len(entries) != 1:
        node = entries[1] if len(entries) > 1 else None
        out.append(
            Problem(node, "entry", f"exactly one entry node is needed, found {len(entries)}")
        )
    return out


def _unreachable(d: Definition) -> list[Problem]:
    by_id = {n.id: n for n in d.nodes}
    start = next(n.id for n in d.nodes if isinstance(n, EntryNode))
    seen, todo = {start}, [start]
    while todo:
        for _, nxt in successors(by_id[todo.pop()]):
            if nxt in by_id and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return [
        Problem(n.id, "unreachable", f"node {n.id!r} cannot be reached from the entry")
        for n in d.nodes
        if n.id not in seen
    ]


def _cycles_without_wait(d: Definition) -> list[Problem]:
    """A cycle through no wait node would run forever in one step: find one node of each."""
    by_id = {n.id: n for n in d.nodes if not is_wait(n)}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    found: list[Problem] = []

    def visit(start: str) -> None:
        stack: list[tuple[str, list[str]]] = [(start, _next_ids(start))]
        state[start] = 1
        while stack:
            node, rest = stack[-1]
            if not rest:
                state[node] = 2
                stack.pop()
                continue
            nxt = rest.pop()
            if state.get(nxt) == 1:
                found.append(
                    Problem(nxt, "cycle-without-wait", f"node {nxt!r} is on a cycle with no wait")
                )
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, _next_ids(nxt)))

    def _next_ids(node: str) -> list[str]:
        return [t for _, t in successors(by_id[node]) if t in by_id]

    for node_id in by_id:
        if node_id not in state:
            visit(node_id)
    return found


def check_graph(d: Definition) -> list[Problem]:
    """Every graph problem of a definition (no database)."""
    shape = _shape(d)
    if shape:
        return shape
    return _unreachable(d) + _cycles_without_wait(d)


def _exists(conn: Conn, query: str, params: tuple[Any, ...]) -> bool:
    return conn.execute(query, params).fetchone() is not None


def check_references(conn: Conn, d: Definition, *, workflow_id: int | None) -> list[Problem]:
    """Templates, segments and workflows the definition names that do not exist (or are
    archived), each at its node ('trigger' or 'exit_when' for those parts)."""
    out: list[Problem] = []

    def segment(node: str | None, sid: int, static: bool = False) -> None:
        q = "SELECT kind FROM crm_segments WHERE id = %s AND archived_at IS NULL"
        row = conn.execute(q, (sid,)).fetchone()
        if row is None:
            out.append(Problem(node, "missing-segment", f"segment {sid} does not exist"))
        elif static and row[0] != "static":
            out.append(Problem(node, "dynamic-segment", f"segment {sid} is dynamic (rule-fed)"))

    if isinstance(d.trigger, SegmentTrigger):
        segment("trigger", d.trigger.segment_id)
    for c in d.exit_when:
        if isinstance(c, SegmentCondition):
            segment("exit_when", c.segment_id)
    for n in d.nodes:
        if isinstance(n, ConditionNode) and isinstance(n.condition, SegmentCondition):
            segment(n.id, n.condition.segment_id)
        if not isinstance(n, ActionNode):
            continue
        a = n.action
        if isinstance(a, SendAction) and not _exists(
            conn,
            "SELECT 1 FROM crm_msg_templates WHERE name = %s AND channel = %s",
            (a.template, a.channel),
        ):
            out.append(
                Problem(n.id, "missing-template", f"no {a.channel} template named {a.template!r}")
            )
        elif isinstance(a, SegmentAction):
            segment(n.id, a.segment_id, static=True)
        elif isinstance(a, WorkflowAction):
            if a.workflow_id == workflow_id:
                out.append(Problem(n.id, "self-workflow", "a workflow cannot enrol into itself"))
            elif not _exists(
                conn,
                "SELECT 1 FROM automation_workflows WHERE id = %s AND status <> 'archived'",
                (a.workflow_id,),
            ):
                out.append(
                    Problem(n.id, "missing-workflow", f"workflow {a.workflow_id} does not exist")
                )
    return out
