"""Scoring fixtures: a database of this module's own (rescoring reads every profile)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.fixtures.services import _create_database, _drop_database


@pytest.fixture(scope="module")
def sc_url(pg_admin_url: str) -> Iterator[str]:
    """A migrated database only this module writes to."""
    url = _create_database(migrate=True, admin_url=pg_admin_url)
    with psycopg.connect(url) as c:
        c.execute("INSERT INTO stores (id, name) VALUES ('sc-s1', 'sc-s1')")
    yield url
    _drop_database(url)


@pytest.fixture
def sc_conn(sc_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection on the module's database."""
    with psycopg.connect(sc_url) as c:
        yield c
