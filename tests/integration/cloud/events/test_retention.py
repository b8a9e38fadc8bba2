"""Retention per source: old rows of a source with retention go, other sources keep theirs;
whole partitions go only once every source is done with them; the beat runs both tasks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from cloud.core.settings import Settings
from cloud.crm.events import repository as repo
from cloud.crm.events import retention, sources
from cloud.crm.events.repository import Event
from cloud.workers.schedule import beat_schedule


def _event(source_id: str, at: datetime, mid: str) -> Event:
    return Event(occurred_at=at, received_at=at, source_id=source_id, message_id=mid,
                 type="track", event="E")  # fmt: skip


def _left(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return sorted(conn.execute("SELECT source_id, message_id FROM crm_events").fetchall())


def test_retention_is_per_source(fresh_database: Callable[..., str]) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(fresh_database()) as conn:
        sources.create_source(conn, source_id="short", name="S", retention_days=30)
        sources.create_source(conn, source_id="keep", name="K")
        old = now - timedelta(days=60)
        repo.copy_events(conn, [_event("short", old, "s-old"), _event("short", now, "s-new"),
                                _event("keep", old, "k-old")])  # fmt: skip
        repo.claim_message_ids(conn, "short", ["m"], now - timedelta(days=40))
        conn.commit()
        res = retention.apply_retention(conn, now=now)
        assert res.deleted == 1 and res.partitions_dropped == 0 and res.message_ids_forgotten == 1
        assert _left(conn) == [("keep", "k-old"), ("short", "s-new")]


def test_partitions_go_when_every_source_is_done(fresh_database: Callable[..., str]) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(fresh_database()) as conn:
        sources.create_source(conn, source_id="a", name="A", retention_days=30)
        sources.update_source(conn, "a", retention_days=20)
        for other in repo.list_sources(conn):  # sources other features made (messaging's)
            if other.retention_days is None:
                sources.update_source(conn, other.id, retention_days=25)
        retention.ensure_partitions(conn, months_back=5, months_ahead=1)
        repo.copy_events(conn, [_event("a", now - timedelta(days=120), "old"),
                                _event("a", now, "new")])  # fmt: skip
        conn.commit()
        res = retention.apply_retention(conn, now=now)
        assert res.deleted == 1 and res.partitions_dropped >= 1
        assert _left(conn) == [("a", "new")]


def test_the_beat_runs_partitions_and_retention() -> None:
    schedule = beat_schedule(Settings())
    tasks = {entry["task"] for entry in schedule.values()}
    assert {"events.ensure_partitions", "events.retention"} <= tasks
    from cloud.workers.app import TASK_MODULES, celery_app

    assert "cloud.crm.events.tasks" in TASK_MODULES
    celery_app.loader.import_default_modules()
    assert {"events.ensure_partitions", "events.retention"} <= set(celery_app.tasks)
