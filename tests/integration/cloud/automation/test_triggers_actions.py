"""Triggers (schedule with a time zone, date property, churn risk, score crossing, segment
entry) and every action's effect, each taken once: points, lifecycle, static segment, another
workflow, a signed webhook to a real local HTTP server, a refused send that fails the step and
lets the path go on."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest

from cloud.core.domain_events import emit
from cloud.crm.automation import enrolment, handlers
from cloud.crm.automation import repository as repo
from cloud.crm.automation.actions import ActionConfig, signature
from cloud.crm.automation.engine import Engine, run_due
from tests.integration.cloud.automation.world import (
    T0,
    actions,
    chain,
    profile,
    status,
    template,
    workflow,
)

Conn = psycopg.Connection[Any]
pytestmark = pytest.mark.integration
TASK = {"kind": "staff_task", "title": "call"}


def _run(conn: Conn, at: datetime, engine: Engine | None = None) -> None:
    while run_due(conn, now=at, engine=engine)[0]:
        pass


def _static_segment(conn: Conn, name: str) -> int:
    row = conn.execute(
        "INSERT INTO crm_segments (name, kind, created_by) VALUES (%s, 'static', 't') RETURNING id",
        (name,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _entered(conn: Conn, wid: int) -> list[int]:
    rows = conn.execute(
        "SELECT profile_id FROM automation_executions WHERE workflow_id = %s ORDER BY profile_id",
        (wid,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def test_a_schedule_fires_once_per_cron_time_in_its_zone(conn: Conn) -> None:
    seg = _static_segment(conn, "sched-audience")
    members = [profile(conn), profile(conn)]
    outsider = profile(conn)
    conn.execute(
        "INSERT INTO crm_segment_members (segment_id, profile_id, entered_at)"
        " SELECT %s, x, %s FROM unnest(%s::bigint[]) x",
        (seg, T0, members),
    )
    # 08:00 in Tokyo is 23:00 UTC the day before.
    wid = workflow(conn, chain({"id": "task", "type": "action", "action": TASK},
                               trigger={"kind": "schedule", "cron": "0 8 * * *",
                                        "timezone": "Asia/Tokyo", "segment_id": seg},
                               reentry={"policy": "always"}))  # fmt: skip
    conn.execute("UPDATE automation_workflows SET last_fired_at = %s WHERE id = %s",
                 (datetime(2026, 3, 1, 22, 0, tzinfo=UTC), wid))  # fmt: skip
    assert handlers.run_periodic(conn, now=datetime(2026, 3, 1, 22, 59, tzinfo=UTC)) == []
    got = handlers.run_periodic(conn, now=datetime(2026, 3, 1, 23, 0, tzinfo=UTC))
    assert len(got) == 2 and _entered(conn, wid) == sorted(members)
    assert outsider not in _entered(conn, wid)
    assert handlers.run_periodic(conn, now=datetime(2026, 3, 1, 23, 1, tzinfo=UTC)) == []


@pytest.mark.parametrize(
    ("birthday", "offset", "enters"),
    [("1990-03-02", 0, True), ("1990-03-03", 0, False), ("1990-02-23", 7, True)],
)
def test_a_date_property_with_an_offset(
    conn: Conn, birthday: str, offset: int, enters: bool
) -> None:
    pid = profile(conn, birthday=birthday)
    wid = workflow(conn, chain({"id": "task", "type": "action", "action": TASK},
                               trigger={"kind": "date", "attribute": "birthday",
                                        "offset_days": offset}))  # fmt: skip
    handlers.run_periodic(conn, now=T0)
    assert (pid in _entered(conn, wid)) is enters


def test_churn_risk_above_a_value(conn: Conn) -> None:
    risky, safe = profile(conn), profile(conn)
    for pid, p in ((risky, 0.9), (safe, 0.2)):
        conn.execute(
            "INSERT INTO ml_customer_scores (customer_id, segment, churn_probability, engagement,"
            " health_score, risk_value, model_version, as_of) VALUES (%s, 'x', %s, 0, 0, 0, 1,"
            " %s)",
            (str(pid), p, T0),
        )
    wid = workflow(conn, chain({"id": "task", "type": "action", "action": TASK},
                               trigger={"kind": "churn", "above": 0.7}))  # fmt: skip
    handlers.run_periodic(conn, now=T0)
    assert _entered(conn, wid) == [risky]
    assert handlers.run_periodic(conn, now=T0) == []  # nobody rescored since
    conn.execute(
        "UPDATE ml_customer_scores SET churn_probability = 0.95,"
        " scored_at = clock_timestamp() + interval '1 s' WHERE customer_id = %s",
        (str(safe),),
    )
    handlers.run_periodic(conn, now=T0)  # risen above the value since the last run
    assert _entered(conn, wid) == sorted([risky, safe])


def test_a_score_crossing_its_threshold(conn: Conn) -> None:
    pid, other = profile(conn), profile(conn)
    score = {"kind": "score", "programme": "b2b", "threshold": 50}
    wid = workflow(conn, chain({"id": "task", "type": "action", "action": TASK}, trigger=score))
    with conn.transaction():
        for p, th, direction in ((pid, 50, "up"), (other, 50, "down")):
            emit(conn, topic="score.threshold_crossed", subject=f"profile:{p}",
                 payload={"profile_id": p, "programme": "b2b", "score": 51.5, "threshold": th,
                          "direction": direction})  # fmt: skip
    handlers.process_all(conn, now=T0)
    assert _entered(conn, wid) == [pid]


def test_points_lifecycle_segment_and_workflow_actions_are_taken_once(conn: Conn) -> None:
    from cloud.crm.loyalty import ledger
    from cloud.db.repositories import crm_loyalty

    pid = profile(conn)
    with conn.transaction():
        account = ledger.open_account(conn, profile_id=pid, now=T0)["id"]
    seg = _static_segment(conn, "auto-static")
    other = workflow(conn, chain({"id": "w", "type": "wait", "seconds": 60}))
    wid = workflow(conn, chain(
        {"id": "award", "type": "action", "action": {"kind": "points", "points": 120}},
        {"id": "deduct", "type": "action", "action": {"kind": "points", "points": -20}},
        {"id": "too-many", "type": "action", "action": {"kind": "points", "points": -5000}},
        {"id": "stage", "type": "action", "action": {"kind": "lifecycle", "stage": "retention"}},
        {"id": "join", "type": "action", "action": {"kind": "segment", "segment_id": seg}},
        {"id": "enrol", "type": "action", "action": {"kind": "workflow", "workflow_id": other}},
        {"id": "unenrol", "type": "action", "action": {"kind": "workflow", "workflow_id": other,
                                                       "enrol": False}},
    ))  # fmt: skip
    eid = enrolment.enrol(conn, workflow_id=wid, profile_id=pid, now=T0, trigger={})
    assert eid is not None

    killed: set[str] = set()

    class KilledError(Exception):
        pass

    def die(execution: int, node: str) -> None:
        if execution == eid and node not in killed:
            killed.add(node)
            raise KilledError

    for _ in range(40):  # every action dies once between its commit and the state write
        try:
            _run(conn, T0, Engine(after_action=die))
        except KilledError:
            conn.execute("UPDATE automation_due SET lease_until = NULL")
            continue
        if status(conn, eid)[0] == "completed":
            break
    assert status(conn, eid)[0] == "completed"
    assert len(killed) == 7
    assert actions(conn, eid) == [
        ("award", True), ("deduct", True), ("too-many", False), ("stage", True), ("join", True),
        ("enrol", True), ("unenrol", True),
    ]  # fmt: skip
    assert crm_loyalty.balance(conn, account, T0) == 100
    assert conn.execute("SELECT lifecycle_stage FROM crm_profiles WHERE id = %s",
                        (pid,)).fetchone() == ("retention",)  # fmt: skip
    assert conn.execute(
        "SELECT count(*) FROM crm_segment_members WHERE segment_id = %s AND profile_id = %s"
        " AND exited_at IS NULL", (seg, pid)).fetchone() == (1,)  # fmt: skip
    assert conn.execute(
        "SELECT count(*) FROM domain_events WHERE topic = 'segment.entered' AND subject = %s",
        (f"profile:{pid}",)).fetchone() == (1,)  # fmt: skip
    assert conn.execute(
        "SELECT status, exit_reason FROM automation_executions WHERE workflow_id = %s",
        (other,)).fetchone() == ("exited", f"removed by workflow {wid}")  # fmt: skip
    log = conn.execute(
        "SELECT detail FROM automation_step_log WHERE execution_id = %s AND event = 'failed'",
        (eid,)).fetchall()  # fmt: skip
    assert len(log) == 1 and "holds 100 points" in log[0][0]


def test_a_refused_send_fails_the_step_and_the_path_goes_on(conn: Conn) -> None:
    template(conn, "no-address")
    pid = profile(conn)  # no e-mail identifier
    wid = workflow(conn, chain(
        {"id": "mail", "type": "action", "action": {"kind": "send", "channel": "email",
                                                    "template": "no-address"}},
        {"id": "task", "type": "action", "action": TASK},
    ))  # fmt: skip
    eid = enrolment.enrol(conn, workflow_id=wid, profile_id=pid, now=T0, trigger={})
    assert eid is not None
    _run(conn, T0)
    assert actions(conn, eid) == [("mail", False), ("task", True)]
    assert status(conn, eid)[0] == "completed"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A real HTTP server on a free port recording each POST (headers, body)."""
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def test_a_webhook_is_signed_and_carries_the_idempotency_key(
    conn: Conn, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, got = receiver
    secret = b"s3cret"
    wid = workflow(conn, chain(
        {"id": "hook", "type": "action", "action": {"kind": "webhook", "url": url}},
        {"id": "bad", "type": "action", "action": {"kind": "webhook", "url": url,
                                                   "secret_name": "unknown"}},
    ))  # fmt: skip
    pid = profile(conn)
    eid = enrolment.enrol(conn, workflow_id=wid, profile_id=pid, now=T0, trigger={})
    assert eid is not None
    engine = Engine(actions=ActionConfig(webhook_secrets={"default": secret}))
    _run(conn, T0, engine)
    assert actions(conn, eid) == [("hook", True), ("bad", False)]
    assert len(got) == 1
    headers, body = got[0]
    assert headers["Idempotency-Key"] == f"{eid}:hook:1"
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert headers["X-MallPulse-Signature"] == expected == signature(secret, body)
    assert json.loads(body)["profile_id"] == pid


def test_waiting_until_a_local_time_uses_the_customer_zone(conn: Conn) -> None:
    wid = workflow(conn, chain({"id": "nine", "type": "wait", "until_local": "09:00"},
                               {"id": "task", "type": "action", "action": TASK}))  # fmt: skip
    tokyo, plain = profile(conn, timezone="Asia/Tokyo"), profile(conn)
    e1 = enrolment.enrol(conn, workflow_id=wid, profile_id=tokyo, now=T0, trigger={})
    e2 = enrolment.enrol(conn, workflow_id=wid, profile_id=plain, now=T0, trigger={})
    assert e1 is not None and e2 is not None
    _run(conn, T0)  # T0 is 09:00 UTC = 18:00 in Tokyo
    rows = conn.execute(
        "SELECT id, wait_until FROM automation_executions WHERE id = ANY(%s)", ([e1, e2],)
    ).fetchall()
    until = {r[0]: r[1] for r in rows}
    assert until[e1] == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 09:00 JST next day
    assert until[e2] == T0 + timedelta(days=1)
    assert repo.due_count(conn) >= 2
