"""ML integration fixtures: a private migrated database (the churn consumer reads every CRM row,
so it must not share the session database with other tests) and a purchase helper."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from cloud.crm.transactions import record_transaction

START = datetime(2025, 1, 1, tzinfo=UTC)
STORE = "ml-store-1"


@pytest.fixture
def ml_db(fresh_database: Callable[..., str]) -> str:
    """A fresh migrated database with one store."""
    url = fresh_database()
    with psycopg.connect(url) as c:
        c.execute("INSERT INTO stores (id, name) VALUES (%s, 'ML test store')", (STORE,))
    return url


@pytest.fixture
def ml_conn(ml_db: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection on the private database."""
    with psycopg.connect(ml_db) as c:
        yield c


Buy = Callable[..., int]


@pytest.fixture
def buy(ml_conn: psycopg.Connection[Any]) -> Buy:
    """Record a POS sale through the CRM's ingestion path; returns the profile id."""
    receipts = itertools.count(1)

    def _buy(
        customer: str, day: float, amount: str = "20.00", kind: str = "sale", email: str = ""
    ) -> int:
        ids = {"pos_customer_id": customer, **({"email": email} if email else {})}
        result = record_transaction(
            ml_conn,
            store_id=STORE,
            external_id=f"R-{next(receipts)}",
            occurred_at=START + timedelta(days=day),
            currency="USD",
            total_amount=Decimal(amount),
            identifiers=ids,
            kind=kind,  # type: ignore[arg-type]
            earn_points=False,
        )
        ml_conn.commit()
        return result.profile_id

    return _buy
