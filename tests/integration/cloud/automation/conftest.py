"""Automation fixtures: a database of this package's own, and helpers to build a world."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.fixtures.services import _create_database, _drop_database


@pytest.fixture(scope="module")
def auto_url(pg_admin_url: str) -> Iterator[str]:
    """A migrated database only this module writes to."""
    url = _create_database(migrate=True, admin_url=pg_admin_url)
    yield url
    _drop_database(url)


@pytest.fixture
def conn(auto_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection on the module's database (the engine commits per step)."""
    with psycopg.connect(auto_url, autocommit=True) as c:
        yield c
