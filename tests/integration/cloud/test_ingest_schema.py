"""The ingest schema: applied by `mallpulse cloud migrate`, safe to run twice, plain variant on
PostgreSQL without TimescaleDB."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg

from cloud.db.migrate import migrate, timescaledb_available

REPO = Path(__file__).resolve().parents[3]
TABLES = {"devices", "cameras", "lines", "zones", "envelopes", "dead_letters", "line_counts",
          "zone_occupancy", "queue_stats", "shelf_interactions", "demographics", "device_health",
          "line_counts_1h", "line_counts_1d", "live_zones", "live_queues", "footfall_events",
          "device_configs"}  # fmt: skip


def test_migrate_command_twice(fresh_database: Callable[..., str]) -> None:
    url = fresh_database(migrate=False)
    cmd = [sys.executable, "-m", "mallpulse", "cloud", "migrate"]
    env = {**os.environ, "MALLPULSE_DATABASE_URL": url}
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "applied" in first.stdout and "101" in first.stdout
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "schema up to date" in second.stdout
    assert migrate(url) == []
    with psycopg.connect(url) as conn:
        names = {r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relkind IN ('r', 'v', 'm', 'p')"
        )}  # fmt: skip
        assert names >= TABLES
        variant = conn.execute(
            "SELECT variant FROM schema_migrations WHERE version = 101"
        ).fetchone()
        expected = "timescale" if timescaledb_available(conn) else "plain"
        assert variant == (expected,)
        brin = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexdef ILIKE '%%using brin%%'"
            " AND tablename = 'line_counts'"
        ).fetchone()
        assert brin == ((1,) if expected == "plain" else (0,))
