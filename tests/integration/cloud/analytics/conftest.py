"""Analytics fixtures: a connection whose transaction every test rolls back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from cloud.core.security import Role


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection on the session database; whatever a test stores is rolled back."""
    with psycopg.connect(database_url) as c:
        yield c
        c.rollback()


@pytest.fixture(scope="session")
def marketer(token_for: Any) -> dict[str, str]:
    """Auth headers of a headquarters marketer."""
    headers: dict[str, str] = token_for(Role.HQ_MARKETER, subject="analyst@hq")
    return headers
