"""CRM integration fixtures: a connection on the session database and a store of our own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from cloud.core.security import Role


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection on the session database; the test commits what it wants kept."""
    with psycopg.connect(database_url) as c:
        yield c


@pytest.fixture(scope="session")
def store_id(database_url: str) -> str:
    """A store registered for the CRM tests."""
    sid = f"crm-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url) as c:
        c.execute("INSERT INTO stores (id, name) VALUES (%s, %s)", (sid, "CRM test store"))
    return sid


@pytest.fixture
def uid() -> str:
    """A short unique token for identifiers of this test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def marketer(token_for: Any) -> dict[str, str]:
    """Auth headers of a headquarters marketer."""
    headers: dict[str, str] = token_for(Role.HQ_MARKETER, subject="marketer@hq")
    return headers
