"""The psycopg 3 connection pool, opened by the composition root and passed down."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from cloud.core.settings import Settings


def open_pool(settings: Settings, *, name: str = "mallpulse") -> ConnectionPool:
    """Open a connection pool and wait until its minimum connections are up."""
    pool = ConnectionPool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        name=name,
        open=False,
        kwargs={"application_name": name},
    )
    pool.open(wait=True, timeout=30.0)
    return pool
