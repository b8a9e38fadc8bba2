"""The crm_events storage contract on the engine of this pass (plain or TimescaleDB):
columns, keys, indexes, partitions created ahead (rows of a new month leave the default
partition) and whole partitions dropped by retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from cloud.crm.events import repository as repo
from cloud.crm.events.repository import Event

CONTRACT = {
    "id": ("bigint", "NO"),
    "occurred_at": ("timestamp with time zone", "NO"),
    "received_at": ("timestamp with time zone", "NO"),
    "source_id": ("text", "NO"),
    "message_id": ("text", "NO"),
    "type": ("text", "NO"),
    "event": ("text", "YES"),
    "profile_id": ("bigint", "YES"),
    "anonymous_id": ("text", "YES"),
    "user_id": ("text", "YES"),
    "properties": ("jsonb", "NO"),
    "store_id": ("text", "YES"),
    "revenue": ("numeric", "YES"),
}


@pytest.fixture
def db(fresh_database: Callable[..., str]) -> Any:
    """A connection to a brand-new migrated database (partitions differ per test)."""
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        yield conn


def _timescale(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return bool(row and row[0])


def _event(at: datetime, mid: str) -> Event:
    return Event(
        occurred_at=at, received_at=at, source_id="web", message_id=mid, type="track",
        event="Order Completed", properties={"sku": "A1"}, store_id="s1", revenue=Decimal("9.5"),
    )  # fmt: skip


def test_columns_keys_and_indexes_follow_the_contract(db: psycopg.Connection[Any]) -> None:
    cols = {
        r[0]: (r[1], r[2])
        for r in db.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name = 'crm_events' AND table_schema = 'public'"
        )
    }
    assert cols == CONTRACT
    pk = db.execute(
        "SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = 'crm_events'::regclass AND i.indisprimary"
    ).fetchone()
    assert pk is not None and sorted(pk[0]) == ["id", "occurred_at"]
    defs = " ".join(
        r[0] for r in db.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'crm_events'")
    )
    assert "(profile_id, occurred_at)" in defs and "(event, occurred_at)" in defs
    identity = db.execute(
        "SELECT is_identity, identity_generation FROM information_schema.columns"
        " WHERE table_name = 'crm_events' AND column_name = 'id'"
    ).fetchone()
    assert identity == ("YES", "ALWAYS")


def test_rows_round_trip_through_copy(db: psycopg.Connection[Any]) -> None:
    at = datetime.now(UTC).replace(microsecond=0)
    assert repo.copy_events(db, [_event(at, "m1"), _event(at - timedelta(days=400), "m2")]) == 2
    got = repo.events_of(db, source_id="web")
    assert [e.message_id for e in got] == ["m1", "m2"]
    assert got[0].properties == {"sku": "A1"} and got[0].revenue == Decimal("9.5")
    assert got[0].id is not None and got[0].occurred_at == at


def test_message_ids_are_claimed_once(db: psycopg.Connection[Any]) -> None:
    now = datetime.now(UTC)
    assert repo.claim_message_ids(db, "web", ["a", "b"], now) == {"a", "b"}
    assert repo.claim_message_ids(db, "web", ["b", "c"], now) == {"c"}
    assert repo.claim_message_ids(db, "app", ["b"], now) == {"b"}  # per source


def test_partitions_ahead_take_rows_out_of_the_default(db: psycopg.Connection[Any]) -> None:
    if _timescale(db):
        assert repo.ensure_partitions(db, months_back=0, months_ahead=12) == 0
        return
    far = datetime.now(UTC).replace(day=15) + timedelta(days=31 * 9)
    repo.copy_events(db, [_event(far, "late")])
    where = "SELECT tableoid::regclass::text FROM crm_events WHERE message_id = 'late'"
    assert db.execute(where).fetchone() == ("crm_events_default",)
    assert repo.ensure_partitions(db, months_back=0, months_ahead=12) >= 1
    assert db.execute(where).fetchone() == (f"crm_events_{far:%Y%m}",)
    assert repo.ensure_partitions(db, months_back=0, months_ahead=12) == 0  # idempotent


def test_whole_partitions_before_a_cutoff_are_dropped(db: psycopg.Connection[Any]) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=100)  # its month ends > 31 days before the cutoff
    repo.ensure_partitions(db, months_back=4, months_ahead=1)
    repo.copy_events(db, [_event(old, "old"), _event(now, "new")])
    assert repo.drop_partitions_before(db, now - timedelta(days=45)) >= 1
    left = [r[0] for r in db.execute("SELECT message_id FROM crm_events")]
    assert left == ["new"]
