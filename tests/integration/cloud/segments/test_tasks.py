"""The segment tasks are registered on the worker and on beat, and run against the database."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from cloud.core.settings import Settings
from cloud.crm.segments import rules as r
from cloud.crm.segments import service, tasks
from cloud.workers.app import TASK_MODULES, celery_app
from cloud.workers.schedule import beat_schedule


def test_tasks_are_registered_and_scheduled() -> None:
    assert "cloud.crm.segments.tasks" in TASK_MODULES
    celery_app.loader.import_default_modules()
    names = {tasks.UPDATE_TASK, tasks.SWEEP_TASK, tasks.SNAPSHOT_TASK}
    assert names <= set(celery_app.tasks)
    scheduled = {e["task"] for e in beat_schedule(Settings()).values()}
    assert names <= scheduled


def test_tasks_run_update_sweep_and_snapshot(seg_url: str) -> None:
    settings = Settings(database_url=seg_url)
    tasks.run_update(settings)  # drain what other tests left
    city = "tasks-city"
    with psycopg.connect(seg_url) as conn:
        rule = r.AttributeRule(type="attribute", attribute="city", op="eq", value=city)
        seg = service.create(conn, name="tasks", description="", kind="dynamic", rule=rule,
                             actor="t")  # fmt: skip
        conn.execute("INSERT INTO crm_profiles (attributes) VALUES (%s)", (Jsonb({"city": city}),))
        conn.commit()
    assert tasks.run_update(settings) >= 1
    assert tasks.run_sweep(settings) == 0  # the update already did it
    assert tasks.run_snapshot(settings) >= 1
    with psycopg.connect(seg_url) as conn:
        today = datetime.now(UTC).date()
        assert service.size_history(conn, seg.id, days=1)[-1] == (today, 1)
