"""Entering a workflow: the re-entry policy, the holdout group, the first timer."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

import psycopg
from pydantic import JsonValue

from cloud.crm.automation import repository as repo
from cloud.crm.automation.definition import Definition
from cloud.crm.automation.metrics import ENROLLED

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]


def definition_of(conn: Conn, workflow_id: int, version: int) -> Definition:
    """A version's definition (versions never change, so parsed ones are cached)."""
    # Keyed by database too: one process may serve several (tests, the demo).
    key = (conn.info.host, conn.info.port, conn.info.dbname, workflow_id, version)
    got = _cached.get(key)
    if got is not None:
        return got
    raw = repo.get_definition(conn, workflow_id, version)
    if raw is None:
        raise LookupError(f"workflow {workflow_id} has no version {version}")
    d = Definition.model_validate(raw)
    if len(_cached) > 4096:
        _cached.clear()
    _cached[key] = d
    return d


_cached: dict[tuple[str, int, str, int, int], Definition] = {}


def unit_hash(*parts: object) -> float:
    """A stable number in [0, 1) from the parts (splits and the holdout draw)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _may_enter(conn: Conn, d: Definition, workflow_id: int, profile_id: int, now: datetime) -> bool:
    last = repo.last_execution(conn, workflow_id, profile_id)
    if last is None:
        return True
    if last.status in repo.LIVE:
        return False
    policy = d.reentry.policy
    if policy == "always":
        return True
    if policy == "after_days":
        return now >= last.enrolled_at + timedelta(days=d.reentry.days)
    return False


def enrol(
    conn: Conn,
    *,
    workflow_id: int,
    profile_id: int,
    now: datetime,
    trigger: dict[str, JsonValue],
    require_active: bool = True,
) -> int | None:
    """Start an execution of the workflow's current version for the customer, in the caller's
    transaction; None when the workflow is not active, the customer is already in it, or the
    re-entry policy says no. A customer drawn into the holdout gets an execution that takes
    no step (it is counted against the goal)."""
    wf = repo.get_workflow(conn, workflow_id)
    if wf is None or (require_active and wf.status != "active"):
        return None
    d = definition_of(conn, workflow_id, wf.current_version)
    # One enrolment at a time per customer and workflow (re-entry reads the last execution).
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('automation'), %s::int)", (profile_id,))
    if not _may_enter(conn, d, workflow_id, profile_id, now):
        return None
    held = unit_hash("holdout", workflow_id, profile_id) * 100 < d.holdout_percent
    entry = d.entry().id
    ex = repo.insert_execution(
        conn,
        workflow_id=workflow_id,
        version=wf.current_version,
        profile_id=profile_id,
        status="holdout" if held else "running",
        node_id=entry,
        trigger=trigger,
        at=now,
    )
    if ex is None:
        return None
    eid = ex.id
    repo.log(conn, ex, entry, "entered", now, detail=f"trigger {trigger.get('kind', '?')}")
    if not held:
        repo.schedule(conn, eid, now)
    ENROLLED.labels(str(trigger.get("kind", "unknown"))).inc()
    log.info(
        "automation enrolment",
        extra={"workflow_id": workflow_id, "execution_id": eid, "profile_id": profile_id,
               "holdout": held},
    )  # fmt: skip
    return eid


def remove(conn: Conn, *, workflow_id: int, profile_id: int, now: datetime, reason: str) -> bool:
    """End the customer's live execution of the workflow (no further action); whether one was."""
    eid = repo.live_execution(conn, workflow_id, profile_id)
    if eid is None:
        return False
    ex = repo.get_execution(conn, eid, lock=True)
    if ex is None or ex.status not in repo.LIVE:
        return False
    repo.finish(conn, eid, status="exited", reason=reason, at=now, converted=False)
    repo.log(conn, ex, ex.node_id, "exited", now, detail=reason)
    return True
