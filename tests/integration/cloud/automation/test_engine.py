"""The step function on real PostgreSQL with an injected clock: actions, waits, branches,
splits, exits (goal, removal, consent, segment left) checked when the step runs, a worker
killed between an action and the state write, re-entry, versions and migration."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from cloud.crm.automation import enrolment, handlers, service
from cloud.crm.automation import repository as repo
from cloud.crm.automation.engine import Engine, run_due
from tests.integration.cloud.automation.world import (
    T0,
    actions,
    chain,
    event,
    profile,
    status,
    template,
    workflow,
)

Conn = psycopg.Connection[Any]
pytestmark = pytest.mark.integration
TASK = {"kind": "staff_task", "title": "call"}


def _enrol(conn: Conn, wid: int, pid: int, at: Any = T0) -> int:
    eid = enrolment.enrol(conn, workflow_id=wid, profile_id=pid, now=at, trigger={"kind": "api"})
    assert eid is not None
    return eid


def _run(conn: Conn, at: Any, engine: Engine | None = None) -> int:
    total = 0
    while True:
        n, _ = run_due(conn, now=at, engine=engine)
        total += n
        if n == 0:
            return total


def test_an_event_trigger_sends_waits_and_branches(conn: Conn) -> None:
    template(conn, "welcome")
    wid = workflow(conn, chain(
        {"id": "hello", "type": "action", "action": {"kind": "send", "channel": "email",
                                                     "template": "welcome"}},
        {"id": "pause", "type": "wait", "seconds": 86400},
        {"id": "gold", "type": "condition", "condition": {"kind": "attribute",
         "attribute": "tier", "op": "eq", "value": "gold"}, "yes": "task", "no": "mark"},
        {"id": "task", "type": "action", "action": TASK, "next": None},
        {"id": "mark", "type": "action", "action": {"kind": "set_attribute",
                                                    "attribute": "nudged", "value": True}},
        trigger={"kind": "event", "event": "signup", "filters": [{"property": "plan",
                                                                  "equals": "pro"}]},
    ))  # fmt: skip
    gold = profile(conn, "gold@example.com", tier="gold")
    plain = profile(conn, "plain@example.com", tier="silver")
    other = profile(conn, "other@example.com", tier="gold")
    event(conn, gold, "signup", T0, plan="pro")
    event(conn, plain, "signup", T0, plan="pro")
    event(conn, other, "signup", T0, plan="free")  # the filter keeps it out
    got = handlers.process_all(conn, now=T0)
    assert sorted(e for b in got for e in b.enrolled) == [e for e in sorted(
        r[0] for r in conn.execute("SELECT id FROM automation_executions WHERE workflow_id = %s",
                                   (wid,)).fetchall())]  # fmt: skip
    assert conn.execute("SELECT count(*) FROM automation_executions WHERE workflow_id = %s",
                        (wid,)).fetchone() == (2,)  # fmt: skip
    _run(conn, T0)
    rows = conn.execute(
        "SELECT profile_id, idempotency_key FROM crm_message_outbox WHERE template = 'welcome'"
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted([gold, plain])
    assert all(r[1].startswith("automation:") for r in rows)
    eg = repo.live_execution(conn, wid, gold)
    assert eg is not None and status(conn, eg) == ("waiting", "pause")
    _run(conn, T0 + timedelta(hours=23))  # not due yet
    assert status(conn, eg) == ("waiting", "pause")
    _run(conn, T0 + timedelta(days=1))
    assert status(conn, eg)[0] == "completed"
    assert [n for n, _ in actions(conn, eg)] == ["hello", "task"]
    ep = conn.execute(
        "SELECT id FROM automation_executions WHERE profile_id = %s", (plain,)
    ).fetchone()
    assert ep is not None and [n for n, _ in actions(conn, ep[0])] == ["hello", "mark"]
    assert conn.execute("SELECT attributes->'nudged' FROM crm_profiles WHERE id = %s",
                        (plain,)).fetchone() == (True,)  # fmt: skip


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("goal", "converted"),
        ("removed", "exited"),
        ("consent", "exited"),
        ("exit_event", "exited"),
    ],
)
def test_a_customer_who_left_gets_no_action_already_scheduled(
    conn: Conn, how: str, expected: str
) -> None:
    wid = workflow(conn, chain(
        {"id": "pause", "type": "wait", "seconds": 3600},
        {"id": "task", "type": "action", "action": TASK},
        goal={"event": "purchase"},
        exit_when=[{"kind": "event", "event": "complained", "within_s": 86400}],
        exit_on_consent={"kind": "consent", "channel": "email"},
    ))  # fmt: skip
    pid = profile(conn)
    eid = _enrol(conn, wid, pid)
    _run(conn, T0)
    assert status(conn, eid) == ("waiting", "pause")
    later = T0 + timedelta(minutes=30)
    if how == "goal":
        event(conn, pid, "purchase", later)
    elif how == "removed":
        with conn.transaction():
            assert service.remove(conn, wid, pid, actor="test")
    elif how == "consent":
        conn.execute(
            "INSERT INTO crm_consents (profile_id, channel, purpose, status, source, updated_at)"
            " VALUES (%s, 'email', 'marketing', 'denied', 'test', %s)",
            (pid, later),
        )
    else:
        event(conn, pid, "complained", later)
    _run(conn, T0 + timedelta(hours=2))  # the timer came due after the customer left
    assert status(conn, eid)[0] == expected
    assert actions(conn, eid) == []
    assert conn.execute("SELECT count(*) FROM automation_due WHERE execution_id = %s",
                        (eid,)).fetchone() == (0,)  # fmt: skip


def test_leaving_the_entry_segment_ends_the_execution(conn: Conn) -> None:
    seg = conn.execute(
        "INSERT INTO crm_segments (name, kind, created_by) VALUES ('vip-auto', 'static', 't')"
        " RETURNING id"
    ).fetchone()
    assert seg is not None
    wid = workflow(conn, chain(
        {"id": "pause", "type": "wait", "seconds": 60},
        {"id": "task", "type": "action", "action": TASK},
        trigger={"kind": "segment", "segment_id": seg[0]},
    ))  # fmt: skip
    pid = profile(conn)
    from cloud.crm.segments import repository as srepo

    with conn.transaction():
        srepo.enter(conn, seg[0], [pid], at=T0, reason="test")
    handlers.process_all(conn, now=T0)  # segment.entered -> enrolled
    eid = repo.live_execution(conn, wid, pid)
    assert eid is not None
    _run(conn, T0)
    with conn.transaction():
        srepo.exit_(conn, seg[0], [pid], at=T0, reason="test")
    _run(conn, T0 + timedelta(minutes=5))
    assert status(conn, eid)[0] == "exited" and actions(conn, eid) == []


def test_a_worker_killed_between_action_and_state_write_does_not_repeat_it(conn: Conn) -> None:
    wid = workflow(conn, chain(
        {"id": "task", "type": "action", "action": TASK},
        {"id": "pts", "type": "action", "action": {"kind": "set_attribute", "attribute": "x",
                                                   "value": 1}},
    ))  # fmt: skip
    pid = profile(conn)
    eid = _enrol(conn, wid, pid)

    class KilledError(Exception):
        pass

    def die(_e: int, node: str) -> None:
        raise KilledError(node)

    with pytest.raises(KilledError):
        run_due(conn, now=T0, engine=Engine(after_action=die), lease_s=30)
    assert status(conn, eid) == ("running", "task")  # the action committed, the move did not
    _run(conn, T0 + timedelta(seconds=10))  # still leased by the dead worker
    assert status(conn, eid) == ("running", "task")
    _run(conn, T0 + timedelta(seconds=31))  # the lease ran out
    assert status(conn, eid)[0] == "completed"
    assert actions(conn, eid) == [("task", True), ("pts", True)]
    tasks = conn.execute("SELECT count(*) FROM automation_staff_tasks WHERE profile_id = %s",
                         (pid,)).fetchone()  # fmt: skip
    assert tasks == (1,)


def test_wait_for_an_event_takes_yes_or_timeout(conn: Conn) -> None:
    wid = workflow(conn, chain(
        {"id": "opened", "type": "wait_event", "event": "email_open", "timeout_s": 3 * 86400,
         "yes": "thanks", "timeout": "nudge"},
        {"id": "thanks", "type": "action", "action": TASK, "next": None},
        {"id": "nudge", "type": "action", "action": {**TASK, "title": "nudge"}},
    ))  # fmt: skip
    opener, idle = profile(conn), profile(conn)
    e1, e2 = _enrol(conn, wid, opener), _enrol(conn, wid, idle)
    _run(conn, T0)
    event(conn, opener, "email_open", T0 + timedelta(days=1))
    handlers.process_all(conn, now=T0 + timedelta(days=1))  # wakes the waiting execution
    _run(conn, T0 + timedelta(days=1))
    assert [n for n, _ in actions(conn, e1)] == ["thanks"]
    assert status(conn, e2) == ("waiting", "opened")
    _run(conn, T0 + timedelta(days=3))
    assert [n for n, _ in actions(conn, e2)] == ["nudge"]


def test_split_assignments_are_recorded_once(conn: Conn) -> None:
    wid = workflow(conn, chain(
        {"id": "ab", "type": "split", "branches": [{"name": "a", "weight": 1, "next": "ta"},
                                                   {"name": "b", "weight": 1, "next": "tb"}]},
        {"id": "ta", "type": "action", "action": TASK, "next": None},
        {"id": "tb", "type": "action", "action": TASK},
    ))  # fmt: skip
    pids = [profile(conn) for _ in range(40)]
    for p in pids:
        _enrol(conn, wid, p)
    _run(conn, T0)
    rows = conn.execute(
        "SELECT branch, count(*) FROM automation_split_assignments WHERE workflow_id = %s"
        " GROUP BY 1 ORDER BY 1",
        (wid,),
    ).fetchall()
    assert [r[0] for r in rows] == ["a", "b"] and sum(r[1] for r in rows) == 40


@pytest.mark.parametrize(
    ("policy", "days", "second_after", "enters_again"),
    [
        ("never", 0, timedelta(days=400), False),
        ("after_days", 7, timedelta(days=3), False),
        ("after_days", 7, timedelta(days=7), True),
        ("always", 0, timedelta(seconds=1), True),
    ],
)
def test_reentry_policy(
    conn: Conn, policy: str, days: int, second_after: timedelta, enters_again: bool
) -> None:
    wid = workflow(conn, chain({"id": "task", "type": "action", "action": TASK},
                               reentry={"policy": policy, "days": days}))  # fmt: skip
    pid = profile(conn)
    _enrol(conn, wid, pid)
    again = enrolment.enrol(conn, workflow_id=wid, profile_id=pid, now=T0, trigger={})
    assert again is None  # still live
    _run(conn, T0)
    again = enrolment.enrol(conn, workflow_id=wid, profile_id=pid, now=T0 + second_after,
                            trigger={})  # fmt: skip
    assert (again is not None) is enters_again


def test_a_new_version_leaves_executions_in_flight_until_migrated(conn: Conn) -> None:
    v1 = chain({"id": "pause", "type": "wait", "seconds": 60},
               {"id": "old", "type": "action", "action": TASK})  # fmt: skip
    wid = workflow(conn, v1)
    pid = profile(conn)
    eid = _enrol(conn, wid, pid)
    _run(conn, T0)
    v2 = chain({"id": "hold", "type": "wait", "seconds": 60},
               {"id": "new", "type": "action", "action": TASK})  # fmt: skip
    from cloud.crm.automation.definition import Definition
    from cloud.crm.automation.errors import AutomationInvalidError

    with conn.transaction():
        service.publish(conn, wid, definition=Definition.model_validate(v2), actor="t")
    with pytest.raises(AutomationInvalidError) as err, conn.transaction():
        service.migrate(conn, wid, from_version=1, mapping={"old": "new"})
    assert err.value.errors is not None and err.value.errors[0]["node"] == "pause"
    other = profile(conn)
    e2 = _enrol(conn, wid, other)  # a new entry runs version 2
    _run(conn, T0 + timedelta(minutes=2))
    assert [n for n, _ in actions(conn, eid)] == ["old"]  # stayed on version 1
    assert [n for n, _ in actions(conn, e2)] == []  # v2 waits from its own entry
    third = profile(conn)
    e3 = _enrol(conn, wid, third, T0 + timedelta(minutes=2))
    _run(conn, T0 + timedelta(minutes=2))
    with conn.transaction():
        service.publish(conn, wid, definition=Definition.model_validate(v1), actor="t")
        assert (
            service.migrate(
                conn, wid, from_version=2, mapping={"hold": "pause"}, now=T0 + timedelta(minutes=2)
            )
            == 2
        )
    _run(conn, T0 + timedelta(minutes=10))
    assert [n for n, _ in actions(conn, e3)] == ["old"]


def test_a_paused_workflow_holds_its_executions(conn: Conn) -> None:
    wid = workflow(conn, chain({"id": "task", "type": "action", "action": TASK}))
    pid = profile(conn)
    eid = _enrol(conn, wid, pid)
    with conn.transaction():
        service.set_status(conn, wid, "paused")
    _run(conn, T0)
    assert actions(conn, eid) == []
    with conn.transaction():
        service.set_status(conn, wid, "active")
    _run(conn, T0 + timedelta(minutes=2))
    assert actions(conn, eid) == [("task", True)]


@pytest.mark.parametrize(
    ("condition", "setup", "expected"),
    [
        ({"kind": "event", "event": "view", "within_s": 3600, "count": 2}, "two-views", "yes"),
        ({"kind": "event", "event": "view", "within_s": 3600, "count": 3}, "two-views", "no"),
        ({"kind": "event", "event": "view", "within_s": 60, "count": 1}, "old-view", "no"),
        ({"kind": "consent", "channel": "email"}, "granted", "yes"),
        ({"kind": "consent", "channel": "email"}, "denied", "no"),
        ({"kind": "consent", "channel": "sms"}, "granted", "no"),
        ({"kind": "segment", "segment_id": 0}, "member", "yes"),
        ({"kind": "segment", "segment_id": 0, "member": False}, "member", "no"),
        ({"kind": "segment", "segment_id": 0}, "none", "no"),
        ({"kind": "attribute", "attribute": "spend", "op": "gte", "value": 100}, "none", "yes"),
        ({"kind": "attribute", "attribute": "spend", "op": "lt", "value": 100}, "none", "no"),
        ({"kind": "attribute", "attribute": "spend", "op": "eq", "value": "120"}, "none", "no"),
        ({"kind": "attribute", "attribute": "gone", "op": "exists"}, "none", "no"),
    ],
)  # fmt: skip
def test_conditions(conn: Conn, condition: dict[str, Any], setup: str, expected: str) -> None:
    from tests.integration.cloud.automation.world import event as track

    seg = conn.execute(
        "INSERT INTO crm_segments (name, kind, created_by) VALUES (%s, 'static', 't') RETURNING id",
        (f"cond-{uuid.uuid4().hex[:8]}",),
    ).fetchone()
    assert seg is not None
    if condition["kind"] == "segment":
        condition = {**condition, "segment_id": seg[0]}
    pid = profile(conn, spend=120)
    if setup == "two-views":
        track(conn, pid, "view", T0 - timedelta(minutes=10))
        track(conn, pid, "view", T0 - timedelta(minutes=5))
    elif setup == "old-view":
        track(conn, pid, "view", T0 - timedelta(minutes=5))
    elif setup in ("granted", "denied"):
        conn.execute(
            "INSERT INTO crm_consents (profile_id, channel, purpose, status, source, updated_at)"
            " VALUES (%s, 'email', 'marketing', %s, 'test', %s)",
            (pid, setup, T0),
        )
    elif setup == "member":
        conn.execute(
            "INSERT INTO crm_segment_members (segment_id, profile_id, entered_at)"
            " VALUES (%s, %s, %s)",
            (seg[0], pid, T0),
        )
    wid = workflow(conn, chain(
        {"id": "c", "type": "condition", "condition": condition, "yes": "y", "no": "n"},
        {"id": "y", "type": "action", "action": TASK, "next": None},
        {"id": "n", "type": "action", "action": TASK},
    ))  # fmt: skip
    eid = _enrol(conn, wid, pid)
    _run(conn, T0)
    assert [n for n, _ in actions(conn, eid)] == [expected[0]]
