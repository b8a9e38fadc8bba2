"""Retention and stale-presence tasks on a database of their own."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_device, create_store
from cloud.db.repositories.telemetry import rollup_is_table
from cloud.workers import footfall_tasks
from cloud.workers.app import celery_app
from tests.fixtures.tsdb import pause_timescale_jobs, run_timescale_jobs


def test_tasks_are_registered_and_scheduled() -> None:
    assert {"footfall.prune", "footfall.mark_stale"} <= set(celery_app.tasks)
    tasks = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert {"footfall.prune", "footfall.mark_stale"} <= tasks


def test_prune_deletes_only_expired_rows(fresh_database: Callable[..., str]) -> None:
    url = fresh_database()
    pause_timescale_jobs(url)
    with psycopg.connect(url) as conn:
        create_store(conn, store_id="s1", name="S", timezone="UTC")
        for age in ("500 days", "1 hour"):
            conn.execute(
                "INSERT INTO line_counts VALUES ('s1', 'd1', 'c', 'l', now() - %s::interval,"
                " now() - %s::interval + interval '1 minute', 1, 0)",
                (age, age),
            )
        for age in ("40 days", "1 day"):
            conn.execute(
                "INSERT INTO envelopes VALUES ('d1', %s, 's1', 'window', now(), now(),"
                " now() - %s::interval)",
                (len(age), age),
            )
        conn.execute(
            "INSERT INTO footfall_events (store_id, body, created_at)"
            " VALUES ('s1', '{}', now() - interval '2 days'), ('s1', '{}', now())"
        )
        plain = rollup_is_table(conn)
    deleted = footfall_tasks.run_prune(Settings(database_url=url), raw_days=400)
    assert deleted["envelopes"] == 1 and deleted["footfall_events"] == 1
    if plain:
        assert deleted["line_counts"] == 1
    else:  # TimescaleDB drops old chunks by its retention policy; the task leaves them alone
        assert "line_counts" not in deleted
        assert run_timescale_jobs(url, "policy_retention") == 7  # 6 time series + emotions
    with psycopg.connect(url) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM line_counts), (SELECT count(*) FROM envelopes),"
            " (SELECT count(*) FROM footfall_events)"
        ).fetchone()
    assert left == (1, 1, 1)


def test_silent_devices_go_offline(fresh_database: Callable[..., str]) -> None:
    url = fresh_database()
    with psycopg.connect(url) as conn:
        create_store(conn, store_id="s1", name="S", timezone="UTC")
        create_device(conn, store_id="s1", device_id="quiet")
        create_device(conn, store_id="s1", device_id="busy")
        conn.execute(
            "UPDATE devices SET online = true, status_at = now() - interval '1 hour',"
            " last_seen_at = CASE id WHEN 'quiet' THEN now() - interval '1 hour' ELSE now() END"
        )
        conn.commit()
        from cloud.db.repositories.telemetry_retention import mark_stale_offline

        assert mark_stale_offline(conn, silent_s=300) == 1
        rows = dict(conn.execute("SELECT id, online FROM devices").fetchall())
    assert rows == {"quiet": False, "busy": True}
