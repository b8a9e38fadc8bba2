"""Experiments fixtures: a marketer, and a small world of profiles, events and purchases."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from cloud.core.security import Role

STORE = "exp-store"


@pytest.fixture
def marketer(token_for: Any) -> dict[str, str]:
    headers: dict[str, str] = token_for(Role.HQ_MARKETER, subject="marketer@hq")
    return headers


@pytest.fixture
def tag() -> str:
    """A suffix that keeps this test's keys and event names its own."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def conn(database_url: str) -> Any:
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(
            "INSERT INTO stores (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (STORE, STORE)
        )
        yield c


@pytest.fixture
def profiles(conn: Any) -> Callable[..., list[int]]:
    def make(n: int, **attributes: Any) -> list[int]:
        rows = conn.execute(
            "INSERT INTO crm_profiles (attributes) SELECT %s FROM generate_series(1, %s)"
            " RETURNING id",
            (Jsonb(attributes), n),
        ).fetchall()
        return [int(r[0]) for r in rows]

    return make


def add_event(conn: Any, profile_id: int, event: str, at: datetime, **props: Any) -> None:
    conn.execute(
        "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
        " profile_id, properties) VALUES (%s, %s, 'test', %s, 'track', %s, %s, %s)",
        (at, at, uuid.uuid4().hex, event, profile_id, Jsonb(props)),
    )


def add_purchase(conn: Any, profile_id: int, at: datetime, amount: str, kind: str = "sale") -> None:
    record = conn.execute(
        "INSERT INTO crm_records (profile_id, source) VALUES (%s, 'test') RETURNING id",
        (profile_id,),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id, occurred_at,"
        " currency, total_amount, kind) VALUES (%s, %s, %s, %s, %s, 'EUR', %s, %s)",
        (profile_id, record, STORE, uuid.uuid4().hex, at, amount, kind),
    )


def assigned_at(conn: Any, experiment_id: int) -> dict[int, tuple[int | None, datetime]]:
    rows = conn.execute(
        "SELECT profile_id, variant, assigned_at FROM crm_experiment_assignments"
        " WHERE experiment_id = %s",
        (experiment_id,),
    ).fetchall()
    return {int(r[0]): (r[1], r[2]) for r in rows}


HOUR = timedelta(hours=1)
