"""Segments fixtures: a database of this module's own (evaluations read every profile)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.fixtures.services import _create_database, _drop_database
from tests.integration.cloud.segments.world import STORES


@pytest.fixture(scope="module")
def seg_url(pg_admin_url: str) -> Iterator[str]:
    """A migrated database only this module writes to, with the world's stores."""
    url = _create_database(migrate=True, admin_url=pg_admin_url)
    with psycopg.connect(url) as c:
        for s in STORES:
            c.execute("INSERT INTO stores (id, name) VALUES (%s, %s)", (s, s))
    yield url
    _drop_database(url)


@pytest.fixture
def seg_conn(seg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection on the module's database."""
    with psycopg.connect(seg_url) as c:
        yield c
