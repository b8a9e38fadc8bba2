"""POS purchases earn by the configured loyalty programme (MALLPULSE_CRM_LOYALTY_PROGRAM_FILE),
never by a built-in default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.settings import Settings
from cloud.crm.transactions import record_transaction


@pytest.fixture
def configured_client(settings: Settings, pg_pool: Any, tmp_path: Path) -> Iterator[TestClient]:
    """The API with a programme file: 10 points per USD and a first-purchase bonus of 7."""
    from cloud.api.app import create_app

    program = tmp_path / "program.json"
    program.write_text(json.dumps({"earn_rates": {"USD": "10"}, "first_purchase_bonus": 7}))
    configured = settings.model_copy(update={"crm_loyalty_program_file": str(program)})
    with TestClient(create_app(configured, pool=pg_pool)) as c:
        yield c


def test_a_pos_purchase_earns_by_the_configured_programme(
    configured_client: TestClient, marketer: dict[str, str], store_id: str, uid: str
) -> None:
    ids = {"email": f"member-{uid}@x.org"}
    made = configured_client.post("/v1/customers", json={"identifiers": ids}, headers=marketer)
    assert made.status_code == 201, made.text
    opened = configured_client.post(
        "/v1/loyalty/accounts", json={"profile_id": made.json()["profile_id"]}, headers=marketer
    )
    assert opened.status_code == 201, opened.text
    sale = {
        "store_id": store_id,
        "external_id": f"prog-{uid}",
        "occurred_at": datetime.now(UTC).isoformat(),
        "currency": "USD",
        "total_amount": "10.00",
        "identifiers": ids,
    }
    res = configured_client.post("/v1/transactions", json=sale, headers=marketer)
    assert res.status_code == 201, res.text
    # 10 USD x 10 points + 7 first-purchase bonus; the built-in default would give 10 + 100
    assert res.json()["points_earned"] == 107
    account = configured_client.get(
        f"/v1/loyalty/accounts/{opened.json()['id']}", headers=marketer
    ).json()
    assert account["balance"] == 107


def test_earning_without_a_programme_is_refused_not_defaulted(
    conn: psycopg.Connection[Any], store_id: str, uid: str
) -> None:
    with pytest.raises(TypeError, match="program="):
        record_transaction(
            conn,
            store_id=store_id,
            external_id=f"noprog-{uid}",
            occurred_at=datetime.now(UTC),
            currency="USD",
            total_amount=Decimal("1.00"),
            identifiers={"email": f"noprog-{uid}@x.org"},
        )
