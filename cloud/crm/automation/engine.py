"""The step function: advance one execution through its version's graph, node by node.

Each node is one transaction that locks the execution row and first checks, at this moment,
whether the customer has left (goal reached, an exit criterion, consent withdrawn, left the
entry segment, the workflow archived): a customer who left gets no further action, not even a
step that was already due. An action node is two transactions: (1) lock, check, do the effect
and journal its outcome under the key execution id + node id + entry count; (2) move on. A
worker killed between them leaves the journal row: the retried step finds it and does not act
again. The clock is passed in (`now`), so tests can move time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from cloud.crm.automation import facts
from cloud.crm.automation import repository as repo
from cloud.crm.automation.actions import ActionConfig, perform
from cloud.crm.automation.definition import (
    ActionNode,
    ConditionNode,
    Definition,
    EndNode,
    EntryNode,
    Node,
    SegmentTrigger,
    SplitNode,
    WaitEventNode,
    WaitNode,
)
from cloud.crm.automation.enrolment import definition_of, unit_hash
from cloud.crm.automation.repository import ExecutionRow

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
PAUSED_RETRY = timedelta(seconds=60)


@dataclass
class Engine:
    """Settings of the step function; `after_action` is a test hook run between an action's
    commit and the state write (raise in it to simulate a worker killed there)."""

    actions: ActionConfig = field(default_factory=ActionConfig)
    max_steps: int = 100
    after_action: Callable[[int, str], None] | None = None


def exit_reason(
    conn: Conn, d: Definition, ex: ExecutionRow, now: datetime
) -> tuple[str, bool] | None:
    """Why the customer must leave now ((reason, converted)), or None to go on."""
    goal = d.goal
    if goal is not None and facts.first_event(conn, ex.profile_id, goal.event, ex.enrolled_at, now):
        return f"goal: {goal.event}", True
    for c in d.exit_when:
        if facts.holds(conn, c, ex.profile_id, now):
            return f"exit criterion: {facts.explain(c)}", False
    c2 = d.exit_on_consent
    if (
        c2 is not None
        and facts.consent_status(conn, ex.profile_id, c2.channel, c2.purpose) == "denied"
    ):
        return f"consent withdrawn: {c2.channel}/{c2.purpose}", False
    t = d.trigger
    if (
        isinstance(t, SegmentTrigger)
        and t.on == "entered"
        and t.exit_on_leave
        and not facts.is_member(conn, ex.profile_id, t.segment_id)
    ):
        return f"left segment {t.segment_id}", False
    return None


def _tz(conn: Conn, profile_id: int, default: str) -> ZoneInfo:
    for name in (facts.attribute(conn, profile_id, "timezone"), default, "UTC"):
        if isinstance(name, str):
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def next_local(now: datetime, hhmm: str, tz: ZoneInfo) -> datetime:
    """The next instant after `now` whose wall-clock time in `tz` is hh:mm."""
    h, m = (int(x) for x in hhmm.split(":"))
    local = now.astimezone(tz)
    cand = datetime.combine(local.date(), time(h, m), tzinfo=tz)
    if cand <= local:
        cand = datetime.combine(local.date() + timedelta(days=1), time(h, m), tzinfo=tz)
    return cand.astimezone(now.tzinfo)


@dataclass(frozen=True)
class _Go:
    branch: str
    target: str | None


@dataclass(frozen=True)
class _Wait:
    until: datetime
    since: datetime


def decide(conn: Conn, node: Node, ex: ExecutionRow, now: datetime) -> _Go | _Wait | None:
    """Where a non-action node leads now: a branch, a wait, or None (end)."""
    if isinstance(node, EntryNode):
        return _Go("next", node.next)
    if isinstance(node, ConditionNode):
        yes = facts.holds(conn, node.condition, ex.profile_id, now)
        return _Go("yes" if yes else "no", node.yes if yes else node.no)
    if isinstance(node, SplitNode):
        total = sum(b.weight for b in node.branches)
        draw, acc = unit_hash("split", ex.id, node.id, ex.visit) * total, 0.0
        pick = node.branches[-1]
        for b in node.branches:
            acc += b.weight
            if draw < acc:
                pick = b
                break
        name = repo.assign_split(conn, ex, node.id, pick.name, now)
        chosen = next((b for b in node.branches if b.name == name), pick)
        return _Go(chosen.name, chosen.next)
    if isinstance(node, WaitNode):
        if ex.wait_until is None:
            if node.seconds is not None:
                return _Wait(now + timedelta(seconds=node.seconds), now)
            assert node.until_local is not None
            tz = _tz(conn, ex.profile_id, node.default_timezone)
            return _Wait(next_local(now, node.until_local, tz), now)
        if now >= ex.wait_until:
            return _Go("next", node.next)
        return _Wait(ex.wait_until, ex.wait_since or now)
    if isinstance(node, WaitEventNode):
        if ex.wait_since is None or ex.wait_until is None:
            return _Wait(now + timedelta(seconds=node.timeout_s or 0), now)
        top = min(now, ex.wait_until)
        if facts.first_event(conn, ex.profile_id, node.event, ex.wait_since, top) is not None:
            return _Go("yes", node.yes)
        if now >= ex.wait_until:
            return _Go("timeout", node.timeout)
        return _Wait(ex.wait_until, ex.wait_since)
    assert isinstance(node, EndNode)
    return None


def _goto(
    conn: Conn,
    ex: ExecutionRow,
    target: str | None,
    now: datetime,
    done: tuple[str, str, str | None, str] | None = None,
) -> ExecutionRow | None:
    """Log `done` (node, event, branch, detail: the step that finished) and enter `target`
    (None: complete); the execution as it now is, or None when it ended."""
    logged = [done] if done is not None else []
    if target is None:
        repo.finish(conn, ex.id, status="completed", reason="end of path", at=now, converted=False)
        repo.log_many(conn, ex, [*logged, (ex.node_id, "completed", None, "end of path")], now)
        return None
    visits = dict(ex.visits)
    visits[target] = visits.get(target, 0) + 1
    repo.move(conn, ex.id, node_id=target, visit=visits[target], visits=visits, status="running",
              wait_since=None, wait_until=None, at=now)  # fmt: skip
    repo.log_many(conn, ex, [*logged, (target, "entered", None, "")], now)
    return replace(ex, node_id=target, visit=visits[target], visits=visits, status="running",
                   wait_since=None, wait_until=None, updated_at=now)  # fmt: skip


def _lock_live(
    conn: Conn, execution_id: int, now: datetime
) -> tuple[ExecutionRow, Definition] | None:
    """Lock the execution; None (and its timer dropped or deferred) unless it may step now."""
    got = repo.lock_execution(conn, execution_id)
    if got is None or got[0].status not in ("running", "waiting"):
        repo.unschedule(conn, execution_id)
        return None
    ex, wf_status = got
    if wf_status == "archived":
        repo.finish(
            conn, ex.id, status="exited", reason="workflow archived", at=now, converted=False
        )
        repo.log(conn, ex, ex.node_id, "exited", now, detail="workflow archived")
        return None
    if wf_status == "paused":
        repo.schedule(conn, ex.id, now + PAUSED_RETRY)
        return None
    d = definition_of(conn, ex.workflow_id, ex.version)
    why = exit_reason(conn, d, ex, now)
    if why is not None:
        reason, converted = why
        status = "converted" if converted else "exited"
        repo.finish(conn, ex.id, status=status, reason=reason, at=now, converted=converted)
        repo.log(conn, ex, ex.node_id, status, now, detail=reason)
        return None
    return ex, d


def _step(conn: Conn, execution_id: int, now: datetime, eng: Engine) -> bool:
    """Run the execution's current node (and the effect-free nodes after it); whether it
    should step again at once."""
    with conn.transaction():
        got = _lock_live(conn, execution_id, now)
        if got is None:
            return False
        ex, d = got
        node = d.node(ex.node_id)
        if node is None:
            repo.finish(conn, ex.id, status="failed", reason=f"no node {ex.node_id!r}", at=now,
                        converted=False)  # fmt: skip
            return False
        if not isinstance(node, ActionNode):
            # Effect-free nodes up to the next action, then that action, all under this lock
            # and after this exit check.
            at_action = _plain_run(conn, d, ex, now)
            if at_action is None:
                return False
            ex = at_action
            node = d.node(ex.node_id)
            assert isinstance(node, ActionNode)
        key = f"{ex.id}:{node.id}:{ex.visit}"
        done = repo.journal_get(conn, key)
        if done is None:
            ok, outcome = perform(conn, node.action, ex, key, now, eng.actions)
            log.info(
                "automation action",
                extra={"execution_id": ex.id, "workflow_id": ex.workflow_id,
                       "profile_id": ex.profile_id, "node_id": node.id, "idempotency_key": key,
                       "kind": node.action.kind, "ok": ok},
            )  # fmt: skip
            repo.journal_put(conn, key, execution_id=ex.id, node_id=node.id,
                             kind=node.action.kind, ok=ok, outcome=outcome, at=now)  # fmt: skip
            done = (ok, outcome)
    if eng.after_action is not None:
        eng.after_action(ex.id, node.id)
    with conn.transaction():
        cur = repo.get_execution(conn, execution_id, lock=True)
        if (
            cur is None
            or cur.status != "running"
            or (cur.node_id, cur.visit) != (node.id, ex.visit)
        ):
            return False  # another worker moved it on meanwhile
        ok, outcome = done
        detail = str(outcome.get("error", node.action.kind))
        event = "completed" if ok else "failed"
        moved = _goto(conn, cur, node.next, now, (node.id, event, None, detail))
        return moved is not None and _plain_run(conn, d, moved, now) is not None


def _plain_run(conn: Conn, d: Definition, ex: ExecutionRow, now: datetime) -> ExecutionRow | None:
    """Run the nodes that have no effect (entry, condition, split, wait decisions, end) in the
    caller's transaction, which holds the execution's lock: same instant, nothing changes
    between them. Returns the execution when it stands at an action node; None when it waits
    or ended."""
    cur: ExecutionRow | None = ex
    for _ in range(len(d.nodes) + 1):
        if cur is None:
            return None
        node = d.node(cur.node_id)
        if node is None:
            repo.finish(conn, cur.id, status="failed", reason=f"no node {cur.node_id!r}", at=now,
                        converted=False)  # fmt: skip
            return None
        if isinstance(node, ActionNode):
            return cur
        cur = _advance_plain(conn, node, cur, now)
    if cur is not None:  # a long effect-free stretch: the next step goes on from here
        repo.schedule(conn, cur.id, now)
    return None


def _advance_plain(conn: Conn, node: Node, ex: ExecutionRow, now: datetime) -> ExecutionRow | None:
    """Decide one effect-free node; the execution after it, or None when it waits or ended."""
    what = decide(conn, node, ex, now)
    if what is None:
        return _goto(conn, ex, None, now)
    if isinstance(what, _Wait):
        if ex.status != "waiting" or ex.wait_until != what.until:
            repo.move(conn, ex.id, node_id=ex.node_id, visit=ex.visit, visits=ex.visits,
                      status="waiting", wait_since=what.since, wait_until=what.until,
                      at=now)  # fmt: skip
            repo.log(conn, ex, node.id, "waiting", now, detail=f"until {what.until.isoformat()}")
        repo.schedule(conn, ex.id, what.until)
        return None
    return _goto(conn, ex, what.target, now, (node.id, "completed", what.branch, ""))


def advance(conn: Conn, execution_id: int, *, now: datetime, engine: Engine | None = None) -> int:
    """Step the execution until it waits, ends or `max_steps` steps ran (then it is due again
    at once); returns how many steps (transactions that claimed it) ran."""
    eng = engine or Engine()
    steps = 0
    while steps < eng.max_steps:
        steps += 1
        if not _step(conn, execution_id, now, eng):
            return steps
    with conn.transaction():
        repo.schedule(conn, execution_id, now)
    return steps


def run_due(
    conn: Conn,
    *,
    now: datetime,
    limit: int = 200,
    lease_s: float = 60.0,
    engine: Engine | None = None,
) -> tuple[int, int]:
    """Claim up to `limit` due executions (SKIP LOCKED, leased for `lease_s`) and advance each;
    returns (executions, nodes run). A worker that dies leaves leases that run out."""
    with conn.transaction():
        ids = repo.claim_due(conn, now=now, lease_until=now + timedelta(seconds=lease_s),
                             limit=limit)  # fmt: skip
    steps = 0
    for eid in ids:
        steps += advance(conn, eid, now=now, engine=engine)
    return len(ids), steps
