"""The effects of action nodes. Each runs in the step's transaction under a savepoint and gets
the step's idempotency key (execution id + node id + entry count): the engine journals the
outcome under that key in the same transaction, so a retried step never acts twice. The
messaging hub's send is idempotent by the key as well; a webhook carries it in a header (the
one effect outside the database: a receiver drops a repeat by that key)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import psycopg
from pydantic import JsonValue

from cloud.core.errors import CloudError
from cloud.crm.automation import enrolment
from cloud.crm.automation.definition import (
    Action,
    LifecycleAction,
    PointsAction,
    SegmentAction,
    SendAction,
    SetAttributeAction,
    StaffTaskAction,
    WebhookAction,
    WorkflowAction,
)
from cloud.crm.automation.repository import ExecutionRow

Conn = psycopg.Connection[Any]
Outcome = dict[str, JsonValue]


@dataclass(frozen=True)
class ActionConfig:
    """What actions need from outside: webhook signing secrets and timeout."""

    webhook_secrets: Mapping[str, bytes] = field(default_factory=dict)
    webhook_timeout_s: float = 5.0


class ActionFailedError(CloudError):
    """An action could not be done (recorded as a failed step, the path goes on)."""

    status = 422
    slug = "automation-action-failed"
    title = "Action failed"


def _send(conn: Conn, a: SendAction, ex: ExecutionRow, key: str) -> Outcome:
    from cloud.crm.messaging import service as messaging

    out = messaging.send(
        conn,
        profile_id=ex.profile_id,
        channel=a.channel,
        template=a.template,
        variables={**a.variables, "workflow_id": ex.workflow_id, "execution_id": ex.id},
        purpose=a.purpose,
        priority=a.priority,
        locale=None,
        idempotency_key=f"automation:{key}",
    )
    return {"message_id": int(out["id"]), "replayed": bool(out["replayed"])}


def _points(conn: Conn, a: PointsAction, ex: ExecutionRow, key: str, now: datetime) -> Outcome:
    from cloud.crm.loyalty import ledger

    row = conn.execute(
        "SELECT id FROM loyalty_accounts WHERE profile_id = %s AND status = 'active'"
        " ORDER BY id LIMIT 1",
        (ex.profile_id,),
    ).fetchone()
    if row is None:
        raise ActionFailedError(f"customer {ex.profile_id} has no active loyalty account")
    account = int(row[0])
    ledger.lock_account(conn, account)
    ref = f"automation:{key}"
    if a.points > 0:
        entry = ledger.credit(conn, account_id=account, points=a.points, now=now, reference=ref,
                              detail={"reason": a.reason})  # fmt: skip
    else:
        entry, _, _ = ledger.debit(conn, account_id=account, points=-a.points, kind="burn",
                                   now=now, reference=ref, detail={"reason": a.reason})  # fmt: skip
    return {"account_id": account, "entry_id": entry, "points": a.points}


def _set_attribute(conn: Conn, a: SetAttributeAction, ex: ExecutionRow) -> Outcome:
    conn.execute(
        "UPDATE crm_profiles SET attributes = attributes"
        " || jsonb_build_object(%s::text, %s::jsonb), updated_at = now() WHERE id = %s",
        (a.attribute, json.dumps(a.value), ex.profile_id),
    )
    return {"attribute": a.attribute, "value": a.value}


def _lifecycle(conn: Conn, a: LifecycleAction, ex: ExecutionRow, now: datetime) -> Outcome:
    from cloud.db.repositories import crm_events as lrepo

    current = lrepo.current_stage(conn, ex.profile_id)
    if current != a.stage:
        lrepo.insert_transitions(
            conn, [(ex.profile_id, current, a.stage, f"automation:{ex.workflow_id}", None, now)]
        )
        lrepo.set_stage(conn, ex.profile_id, a.stage)
    return {"from": current, "to": a.stage}


def _segment(conn: Conn, a: SegmentAction, ex: ExecutionRow, now: datetime) -> Outcome:
    from cloud.crm.segments import repository as srepo

    seg = srepo.get_segment(conn, a.segment_id)
    if seg is None or seg.kind != "static":
        raise ActionFailedError(f"segment {a.segment_id} is not a live static segment")
    srepo.lock_segment(conn, a.segment_id)
    reason = f"automation:{ex.workflow_id}"
    if a.add:
        n = srepo.enter(conn, a.segment_id, [ex.profile_id], at=now, reason=reason)
    else:
        n = srepo.exit_(conn, a.segment_id, [ex.profile_id], at=now, reason=reason)
    return {"segment_id": a.segment_id, "changed": n}


def _workflow(conn: Conn, a: WorkflowAction, ex: ExecutionRow, now: datetime) -> Outcome:
    if a.enrol:
        eid = enrolment.enrol(
            conn, workflow_id=a.workflow_id, profile_id=ex.profile_id, now=now,
            trigger={"kind": "workflow", "workflow_id": ex.workflow_id, "execution_id": ex.id},
        )  # fmt: skip
        return {"workflow_id": a.workflow_id, "execution_id": eid}
    done = enrolment.remove(conn, workflow_id=a.workflow_id, profile_id=ex.profile_id, now=now,
                            reason=f"removed by workflow {ex.workflow_id}")  # fmt: skip
    return {"workflow_id": a.workflow_id, "removed": done}


def signature(secret: bytes, body: bytes) -> str:
    """The X-MallPulse-Signature header of a webhook body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _webhook(a: WebhookAction, ex: ExecutionRow, key: str, cfg: ActionConfig) -> Outcome:
    secret = cfg.webhook_secrets.get(a.secret_name)
    if secret is None:
        raise ActionFailedError(f"no webhook secret named {a.secret_name!r} is configured")
    body = json.dumps(
        {"workflow_id": ex.workflow_id, "version": ex.version, "execution_id": ex.id,
         "profile_id": ex.profile_id, "node_id": ex.node_id, "idempotency_key": key},
        sort_keys=True,
    ).encode()  # fmt: skip
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": key,
        "X-MallPulse-Signature": signature(secret, body),
    }
    try:
        resp = httpx.post(a.url, content=body, headers=headers, timeout=cfg.webhook_timeout_s)
    except httpx.HTTPError as exc:
        raise ActionFailedError(f"webhook {a.url} failed: {exc.__class__.__name__}") from exc
    if resp.status_code >= 300:
        raise ActionFailedError(f"webhook {a.url} answered {resp.status_code}")
    return {"status": resp.status_code}


def _staff_task(
    conn: Conn, a: StaffTaskAction, ex: ExecutionRow, key: str, now: datetime
) -> Outcome:
    row = conn.execute(
        "INSERT INTO automation_staff_tasks (idem_key, profile_id, store_id, kind, title,"
        " created_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (idem_key) DO NOTHING"
        " RETURNING id",
        (key, ex.profile_id, a.store_id, "alert" if a.alert else "task", a.title, now),
    ).fetchone()
    return {"task_id": int(row[0]) if row else None}


def perform(
    conn: Conn, action: Action, ex: ExecutionRow, key: str, now: datetime, cfg: ActionConfig
) -> tuple[bool, Outcome]:
    """Do the action under a savepoint; (ok, outcome). A refused action (no address, too few
    points, a webhook error...) rolls back its own writes and is (False, {"error": ...})."""
    try:
        with conn.transaction():
            if isinstance(action, SendAction):
                return True, _send(conn, action, ex, key)
            if isinstance(action, PointsAction):
                return True, _points(conn, action, ex, key, now)
            if isinstance(action, SetAttributeAction):
                return True, _set_attribute(conn, action, ex)
            if isinstance(action, LifecycleAction):
                return True, _lifecycle(conn, action, ex, now)
            if isinstance(action, SegmentAction):
                return True, _segment(conn, action, ex, now)
            if isinstance(action, WorkflowAction):
                return True, _workflow(conn, action, ex, now)
            if isinstance(action, WebhookAction):
                return True, _webhook(action, ex, key, cfg)
            assert isinstance(action, StaffTaskAction)
            return True, _staff_task(conn, action, ex, key, now)
    except CloudError as exc:
        return False, {"error": exc.detail[:500]}
