"""End to end on a real Celery worker (Redis broker, a private queue): tracked events trigger a
workflow, the worker steps it, and is SIGKILLed exactly between an action's commit and the
state write (a test-only trigger holds that UPDATE on an advisory lock the test owns). The
next worker, once the dead one's lease ran out, finishes every execution: each action's
effect exists exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from celery import Celery

from tests.integration.cloud.automation.world import chain, event, profile, workflow
from tests.support.mqtt import wait_until

REPO = Path(__file__).resolve().parents[4]
BROKER = "redis://127.0.0.1:6379/1"
pytestmark = [pytest.mark.integration, pytest.mark.slow]
HOLD = 7_150_015  # the advisory lock key the test holds

# Test-only: the move off node 'act' (the state write after the action) waits for HOLD.
BLOCK_MOVE = f"""
CREATE FUNCTION test_hold_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock({HOLD});
    PERFORM pg_advisory_unlock({HOLD});
    RETURN NEW;
END $$;
CREATE TRIGGER test_hold_move BEFORE UPDATE ON automation_executions FOR EACH ROW
    WHEN (OLD.node_id = 'act' AND NEW.node_id <> 'act') EXECUTE FUNCTION test_hold_move();
"""


def _worker(queue: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLPULSE_")}
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cloud.workers.app", "worker",
            "--pool=solo", "-Q", queue, "-n", f"{queue}@%h", "--without-heartbeat",
            "--without-gossip", "--without-mingle", "--loglevel=WARNING",
        ],
        cwd=REPO, env={**clean, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def world(fresh_database: Callable[..., str]) -> Iterator[tuple[str, dict[str, str], str]]:
    """(database url, the worker's environment, its private queue)."""
    url = fresh_database()
    env = {"MALLPULSE_DATABASE_URL": url, "MALLPULSE_CELERY_BROKER_URL": BROKER}
    queue = f"mp-test-auto-{uuid.uuid4().hex[:10]}"
    yield url, env, queue
    import redis

    redis.Redis.from_url(BROKER).delete(queue)


def _count(conn: psycopg.Connection[Any], q: str) -> int:
    row = conn.execute(q).fetchone()
    return int(row[0]) if row else 0


def test_a_worker_killed_between_action_and_state_write_never_repeats_it(
    world: tuple[str, dict[str, str], str],
) -> None:
    url, env, queue = world
    holder = psycopg.connect(url, autocommit=True)
    conn = psycopg.connect(url, autocommit=True)
    try:
        wid = workflow(conn, chain(
            {"id": "act", "type": "action", "action": {"kind": "staff_task", "title": "call"}},
            {"id": "mark", "type": "action", "action": {"kind": "set_attribute",
                                                        "attribute": "called", "value": True}},
            trigger={"kind": "event", "event": "signup"},
        ))  # fmt: skip
        pids = [profile(conn) for _ in range(3)]
        conn.execute(BLOCK_MOVE)
        holder.execute("SELECT pg_advisory_lock(%s)", (HOLD,))
        for p in pids:
            event(conn, p, "signup", datetime.now(UTC))
        app = Celery("test", broker=BROKER)
        first = _worker(queue, env)
        try:
            app.send_task("automation.triggers", kwargs={"lease_s": 2.0}, queue=queue)
            wait_until(
                lambda: _count(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                               " AND NOT granted") == 1,
                timeout=120, what="the worker blocked in the state write after its action",
            )  # fmt: skip
            assert _count(conn, "SELECT count(*) FROM automation_staff_tasks") == 1
            os.kill(first.pid, signal.SIGKILL)
            assert first.wait(timeout=60) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
        # The dead worker's session would finish the UPDATE and then find no client: end it.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND NOT granted"
        )
        holder.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
        assert _count(conn, "SELECT count(*) FROM automation_executions WHERE node_id = 'act'"
                            " AND status = 'running'") == 1  # fmt: skip
        assert _count(conn, "SELECT count(*) FROM automation_actions WHERE node_id = 'act'") == 1
        second = _worker(queue, env)
        try:
            deadline = time.monotonic() + 120
            done = "SELECT count(*) FROM automation_executions WHERE status = 'completed'"
            while _count(conn, done) < len(pids) and time.monotonic() < deadline:
                app.send_task("automation.advance", kwargs={"lease_s": 2.0}, queue=queue)
                time.sleep(1.0)  # as beat would
        finally:
            second.terminate()
            second.wait(timeout=60)
        assert _count(conn, done) == len(pids)
        tasks = conn.execute(
            "SELECT profile_id, count(*) FROM automation_staff_tasks GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert tasks == [(p, 1) for p in sorted(pids)]
        journal = conn.execute(
            "SELECT node_id, count(*) FROM automation_actions GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert journal == [("act", 3), ("mark", 3)]
        assert _count(conn, "SELECT count(*) FROM crm_profiles WHERE attributes->'called'"
                            " = 'true'::jsonb") == 3  # fmt: skip
        assert wid > 0
    finally:
        conn.close()
        holder.close()
