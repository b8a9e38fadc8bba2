"""Helpers for automation tests: profiles, events, templates, workflows; an injected clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cloud.crm.automation import service
from cloud.crm.automation.definition import Definition

Conn = psycopg.Connection[Any]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def profile(conn: Conn, email: str | None = None, **attrs: Any) -> int:
    """A profile with attributes (and an e-mail identifier when given)."""
    if email is not None:
        from cloud.crm.identity.service import ingest_record

        pid = ingest_record(conn, source="web", identifiers={"email": email}).profile_id
        conn.execute(
            "UPDATE crm_profiles SET attributes = attributes || %s WHERE id = %s",
            (Jsonb(attrs), pid),
        )
        return int(pid)
    row = conn.execute(
        "INSERT INTO crm_profiles (attributes) VALUES (%s) RETURNING id", (Jsonb(attrs),)
    ).fetchone()
    assert row is not None
    return int(row[0])


def event(conn: Conn, pid: int, name: str, at: datetime, **props: Any) -> None:
    """A tracked event in the event stream."""
    conn.execute(
        "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
        " profile_id, properties) VALUES (%s, %s, 'auto', %s, 'track', %s, %s, %s)",
        (at, at, uuid.uuid4().hex, name, pid, Jsonb(props)),
    )


def template(conn: Conn, name: str = "welcome", channel: str = "email") -> None:
    """A messaging template."""
    from cloud.crm.messaging import repository as mrepo

    mrepo.upsert_template(
        conn, name=name, channel=channel, locale="en", format="text",
        subject="Hi", body="Hello {{ execution_id }}",
    )  # fmt: skip


def workflow(
    conn: Conn, raw: dict[str, Any], *, name: str | None = None, active: bool = True
) -> int:
    """Create (and activate) a workflow from a raw definition; returns its id."""
    d = Definition.model_validate(raw)
    with conn.transaction():
        wf = service.create(conn, name=name or f"wf-{uuid.uuid4().hex[:8]}", definition=d,
                            actor="test")  # fmt: skip
        if active:
            service.set_status(conn, wf.id, "active")
    return wf.id


def chain(
    *nodes: dict[str, Any], trigger: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A definition whose nodes follow each other (each `next` set to the following one)."""
    out = [{"id": "start", "type": "entry"}, *nodes]
    for a, b in pairwise(out):
        if a["type"] in ("entry", "wait", "action") and "next" not in a:
            a["next"] = b["id"]
    return {"trigger": trigger or {"kind": "api"}, "nodes": out, **extra}


def status(conn: Conn, eid: int) -> tuple[str, str]:
    """(status, node) of an execution."""
    row = conn.execute(
        "SELECT status, node_id FROM automation_executions WHERE id = %s", (eid,)
    ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def actions(conn: Conn, eid: int) -> list[tuple[str, bool]]:
    """(node, ok) of the journalled actions of an execution, in order."""
    rows = conn.execute(
        "SELECT a.node_id, a.ok FROM automation_actions a WHERE a.execution_id = %s"
        " ORDER BY a.at, (SELECT min(l.id) FROM automation_step_log l WHERE l.execution_id ="
        " a.execution_id AND l.node_id = a.node_id AND l.event IN ('completed', 'failed'))",
        (eid,),
    ).fetchall()
    return [(str(r[0]), bool(r[1])) for r in rows]
