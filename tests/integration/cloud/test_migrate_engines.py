"""Which storage engine the migrations pick, and what a failed migration reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from cloud.db import migrate as migrate_module
from cloud.db.migrate import Migration, MigrationError, migrate
from tests.fixtures.tsdb import restart_without_preload, start_kit_server


@pytest.fixture
def unpreloaded_server() -> Iterator[str]:
    """A kit server of its own whose TimescaleDB is packaged but not preloaded."""
    servers = start_kit_server()
    url = next(servers)
    restart_without_preload(url)
    yield url
    servers.close()


def test_available_but_not_preloaded_means_plain(unpreloaded_server: str) -> None:
    with psycopg.connect(unpreloaded_server, autocommit=True) as conn:
        conn.execute("CREATE DATABASE app")
        listed = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
    assert listed is not None  # the case at hand: listed, yet CREATE EXTENSION would fail
    url = unpreloaded_server.rpartition("/")[0] + "/app"
    assert 101 in migrate(url)
    with psycopg.connect(url) as conn:
        variant = conn.execute("SELECT variant FROM schema_migrations WHERE version = 101")
        assert variant.fetchone() == ("plain",)


def test_timescaledb_preloaded_means_timescale(engine_database: Callable[..., str]) -> None:
    url = engine_database("timescale")
    with psycopg.connect(url) as conn:
        variant = conn.execute("SELECT variant FROM schema_migrations WHERE version = 101")
        assert variant.fetchone() == ("timescale",)
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'line_counts_1h'")
        assert kind.fetchone() == ("v",)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT pg_terminate_backend(pg_backend_pid())", "terminating connection"),
        ("CREATE TABLE broken (", "syntax error"),
    ],
)
def test_a_failed_migration_reports_the_database_error(
    fresh_database: Callable[..., str], monkeypatch: pytest.MonkeyPatch, sql: str, expected: str
) -> None:
    url = fresh_database(migrate=False)
    monkeypatch.setattr(migrate_module, "discover", lambda: [Migration(1, "boom", None, sql)])
    with pytest.raises(MigrationError) as err:
        migrate(url)
    assert "migration 0001_boom failed" in str(err.value) and expected in str(err.value)
    # the lock is free again: a second run gets as far as the same error
    with pytest.raises(MigrationError):
        migrate(url)
