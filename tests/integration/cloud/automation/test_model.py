"""Model-based test (hypothesis stateful): random small workflows, enrolments, events, attribute
changes, clock jumps and workers killed between an action and the state write. After every run
of the workers, every customer's actions (the journal and the real effect, a staff task row)
and the execution's state equal what a small reference interpreter predicts, and no action
happened twice. The engine's step function runs in-process on real PostgreSQL with the clock
injected."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from cloud.crm.automation import enrolment, handlers
from cloud.crm.automation.engine import Engine, run_due
from tests.integration.cloud.automation.world import T0, event, profile, workflow

pytestmark = [pytest.mark.integration, pytest.mark.slow]
Conn = psycopg.Connection[Any]
CUSTOMERS = 3


# --- random workflows -------------------------------------------------------------------------


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    """A random DAG of 1-5 nodes (actions, waits, conditions, waits for an event, ends)."""
    n = draw(st.integers(1, 5))
    ids = [f"n{i}" for i in range(n)]

    def target(i: int) -> str | None:
        return draw(st.sampled_from([None, *ids[i + 1 :]]))

    nodes: list[dict[str, Any]] = [{"id": "start", "type": "entry", "next": ids[0]}]
    for i, nid in enumerate(ids):
        kind = draw(st.sampled_from(["action", "action", "wait", "condition", "wait_event", "end"]))
        if kind == "action":
            nodes.append({"id": nid, "type": "action", "next": target(i),
                          "action": {"kind": "staff_task", "title": nid}})  # fmt: skip
        elif kind == "wait":
            s = draw(st.sampled_from([0, 60, 3600]))
            nodes.append({"id": nid, "type": "wait", "seconds": s, "next": target(i)})
        elif kind == "condition":
            nodes.append({"id": nid, "type": "condition", "yes": target(i), "no": target(i),
                          "condition": {"kind": "attribute", "attribute": "flag", "op": "eq",
                                        "value": True}})  # fmt: skip
        elif kind == "wait_event":
            s = draw(st.sampled_from([60, 3600]))
            nodes.append({"id": nid, "type": "wait_event", "event": "open", "timeout_s": s,
                          "yes": target(i), "timeout": target(i)})  # fmt: skip
        else:
            nodes.append({"id": nid, "type": "end"})
    by_id = {x["id"]: x for x in nodes}
    seen, todo = {"start"}, ["start"]
    while todo:
        x = by_id[todo.pop()]
        for k in ("next", "yes", "no", "timeout"):
            t = x.get(k)
            if t is not None and t not in seen:
                seen.add(t)
                todo.append(t)
    return {"trigger": {"kind": "api"}, "nodes": [x for x in nodes if x["id"] in seen],
            "goal": {"event": "buy"}}  # fmt: skip


# --- the reference interpreter ----------------------------------------------------------------


@dataclass
class Ex:
    """The model of one execution."""

    enrolled_at: datetime
    node: str = "start"
    status: str = "running"
    due: datetime | None = None
    wait_since: datetime | None = None
    wait_until: datetime | None = None
    actions: list[str] = field(default_factory=list)


@dataclass
class Model:
    """A small interpreter of the same semantics, written from the docs, not the engine."""

    nodes: dict[str, dict[str, Any]]
    flags: dict[int, bool]
    events: dict[int, list[tuple[str, datetime]]]
    ex: dict[int, Ex] = field(default_factory=dict)

    def enrol(self, pid: int, now: datetime) -> None:
        if pid not in self.ex:  # re-entry "never"
            self.ex[pid] = Ex(enrolled_at=now, due=now)

    def _did(self, pid: int, name: str, lo: datetime, hi: datetime) -> bool:
        return any(n == name and lo <= t <= hi for n, t in self.events[pid])

    def on_event(self, pid: int, name: str, now: datetime) -> None:
        self.events[pid].append((name, now))
        e = self.ex.get(pid)
        if e is None or e.status != "waiting":
            return
        node = self.nodes[e.node]
        if name == "buy" or (node["type"] == "wait_event" and node["event"] == name):
            e.due = now if e.due is None else min(e.due, now)

    def run(self, now: datetime) -> None:
        """Workers run until nothing is due (a wait of 0 s is due again at once)."""
        while True:
            live = [(p, e) for p, e in self.ex.items() if e.status in ("running", "waiting")]
            due = [(p, e) for p, e in live if e.due is not None and e.due <= now]
            if not due:
                return
            for pid, e in due:
                e.due = None
                self._advance(pid, e, now)

    def _goto(self, e: Ex, target: str | None) -> None:
        if target is None:
            e.status, e.due = "completed", None
        else:
            e.node, e.status, e.wait_since, e.wait_until = target, "running", None, None

    def _advance(self, pid: int, e: Ex, now: datetime) -> None:
        while e.status == "running" or e.status == "waiting":
            if self._did(pid, "buy", e.enrolled_at, now):
                e.status, e.due = "converted", None
                return
            n = self.nodes[e.node]
            t = n["type"]
            if t == "entry":
                self._goto(e, n["next"])
            elif t == "end":
                self._goto(e, None)
            elif t == "action":
                e.actions.append(n["id"])
                self._goto(e, n["next"])
            elif t == "condition":
                self._goto(e, n["yes"] if self.flags[pid] else n["no"])
            elif t == "wait":
                if e.wait_until is None:
                    e.wait_until, e.wait_since = now + timedelta(seconds=n["seconds"]), now
                    e.status, e.due = "waiting", e.wait_until
                    return
                if now >= e.wait_until:
                    self._goto(e, n["next"])
                else:
                    e.due = e.wait_until
                    return
            else:  # wait_event
                if e.wait_until is None or e.wait_since is None:
                    e.wait_since, e.wait_until = now, now + timedelta(seconds=n["timeout_s"])
                    e.status, e.due = "waiting", e.wait_until
                    return
                if self._did(pid, n["event"], e.wait_since, min(now, e.wait_until)):
                    self._goto(e, n["yes"])
                elif now >= e.wait_until:
                    self._goto(e, n["timeout"])
                else:
                    e.due = e.wait_until
                    return


# --- the state machine ------------------------------------------------------------------------


class KilledError(Exception):
    """A worker dies between an action's commit and the state write."""


class Automation(RuleBasedStateMachine):
    """Engine vs model on random workflows."""

    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.conn = psycopg.connect(self.url, autocommit=True)
        self.now = T0

    def teardown(self) -> None:
        self.conn.close()

    @initialize(raw=workflows(), flags=st.lists(st.booleans(), min_size=CUSTOMERS,
                                                 max_size=CUSTOMERS))  # fmt: skip
    def setup(self, raw: dict[str, Any], flags: list[bool]) -> None:
        self.wid = workflow(self.conn, raw, name=f"model-{uuid.uuid4().hex[:10]}")
        self.pids = [profile(self.conn, flag=f) for f in flags]
        self.model = Model(
            nodes={x["id"]: x for x in raw["nodes"]},
            flags=dict(zip(self.pids, flags, strict=True)),
            events={p: [] for p in self.pids},
        )

    @rule(i=st.integers(0, CUSTOMERS - 1))
    def enrol(self, i: int) -> None:
        pid = self.pids[i]
        enrolment.enrol(self.conn, workflow_id=self.wid, profile_id=pid, now=self.now,
                        trigger={"kind": "api"})  # fmt: skip
        self.model.enrol(pid, self.now)

    @rule(i=st.integers(0, CUSTOMERS - 1), name=st.sampled_from(["open", "buy"]))
    def happens(self, i: int, name: str) -> None:
        pid = self.pids[i]
        event(self.conn, pid, name, self.now)
        handlers.process_all(self.conn, now=self.now)  # wakes waiting executions
        self.model.on_event(pid, name, self.now)

    @rule(i=st.integers(0, CUSTOMERS - 1))
    def flip(self, i: int) -> None:
        pid = self.pids[i]
        self.model.flags[pid] = not self.model.flags[pid]
        self.conn.execute(
            "UPDATE crm_profiles SET attributes = attributes || jsonb_build_object('flag', %s)"
            " WHERE id = %s",
            (self.model.flags[pid], pid),
        )

    @rule(seconds=st.sampled_from([0, 30, 60, 600, 3600, 7200]))
    def tick(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(kills=st.integers(0, 3))
    def work(self, kills: int) -> None:
        left = [kills]

        def die(_eid: int, _node: str) -> None:
            if left[0] > 0:
                left[0] -= 1
                raise KilledError

        engine = Engine(after_action=die)
        for _ in range(100):
            try:
                claimed, _ = run_due(self.conn, now=self.now, lease_s=0, limit=2, engine=engine)
            except KilledError:
                continue  # the lease (0 s) has run out: the next worker claims it again
            if claimed == 0:
                break
        self.model.run(self.now)
        self._compare()

    def _compare(self) -> None:
        for pid in self.pids:
            e = self.model.ex.get(pid)
            rows = self.conn.execute(
                "SELECT e.id, e.status, e.node_id FROM automation_executions e"
                " WHERE e.workflow_id = %s AND e.profile_id = %s",
                (self.wid, pid),
            ).fetchall()
            if e is None:
                assert rows == []
                continue
            assert len(rows) == 1
            eid, status, node = rows[0]
            journal = self.conn.execute(
                "SELECT node_id FROM automation_actions WHERE execution_id = %s ORDER BY node_id",
                (eid,),
            ).fetchall()
            assert sorted(r[0] for r in journal) == sorted(e.actions), (pid, e)
            tasks = self.conn.execute(
                "SELECT title FROM automation_staff_tasks WHERE profile_id = %s ORDER BY title",
                (pid,),
            ).fetchall()
            assert [r[0] for r in tasks] == sorted(e.actions), (pid, e)  # the real effects
            assert status == e.status, (pid, status, e)
            if status in ("running", "waiting"):
                assert node == e.node

    @invariant()
    def no_action_twice(self) -> None:
        if not hasattr(self, "pids"):
            return
        rows = self.conn.execute(
            "SELECT profile_id, title, count(*) FROM automation_staff_tasks"
            " WHERE profile_id = ANY(%s) GROUP BY 1, 2",
            (self.pids,),
        ).fetchall()
        assert all(r[2] == 1 for r in rows), rows  # nodes form a DAG: each at most once


def test_engine_matches_the_reference_interpreter(auto_url: str) -> None:
    Automation.url = auto_url
    run_state_machine_as_test(
        Automation,
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
