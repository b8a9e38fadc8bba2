"""Goodwill points: a limit per role, and above a threshold a pending credit that another admin
approves (points move only then) or rejects; idempotency keys still hold."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from tests.integration.cloud.security.crm_helpers import customer, headers, problem


@pytest.fixture(scope="module")
def marketer(token_for: Any) -> dict[str, str]:
    """A headquarters marketer."""
    return headers(token_for, Role.HQ_MARKETER)


@pytest.fixture(scope="module")
def admins(token_for: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Two different admins."""
    return headers(token_for, Role.ADMIN), headers(token_for, Role.ADMIN)


def _account(client: TestClient, auth: dict[str, str]) -> int:
    pid, _ = customer(client, auth)
    res = client.post("/v1/loyalty/accounts", json={"profile_id": pid}, headers=auth)
    assert res.status_code == 201, res.text
    return int(res.json()["id"])


def _post(client: TestClient, auth: dict[str, str], url: str, body: Any, key: str = "") -> Any:
    return client.post(url, json=body, headers={**auth, "Idempotency-Key": key or uuid.uuid4().hex})


def _balance(client: TestClient, auth: dict[str, str], account: int) -> int:
    return int(client.get(f"/v1/loyalty/accounts/{account}", headers=auth).json()["balance"])


def test_marketer_cannot_credit_int_max_points(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    """An hq_marketer used to credit 2**31-1 goodwill points in one call."""
    account = _account(client, marketer)
    res = _post(client, marketer, f"/v1/loyalty/accounts/{account}/earn", {"points": 2**31 - 1})
    assert "at most 10000" in problem(res, 403)["detail"]
    assert _balance(client, marketer, account) == 0
    with psycopg.connect(database_url) as conn:
        pending = conn.execute(
            "SELECT count(*) FROM loyalty_point_approvals WHERE account_id = %s", (account,)
        ).fetchone()
    assert pending == (0,)


def test_small_credit_moves_at_once(client: TestClient, marketer: dict[str, str]) -> None:
    account = _account(client, marketer)
    res = _post(client, marketer, f"/v1/loyalty/accounts/{account}/earn", {"points": 1000})
    assert res.status_code == 200 and res.json()["status"] == "credited", res.text
    assert _balance(client, marketer, account) == 1000


def test_large_credit_waits_for_another_admin(
    client: TestClient,
    marketer: dict[str, str],
    admins: tuple[dict[str, str], dict[str, str]],
) -> None:
    account = _account(client, marketer)
    url = f"/v1/loyalty/accounts/{account}/earn"
    key = uuid.uuid4().hex
    asked = _post(client, marketer, url, {"points": 5000, "reason": "apology"}, key)
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "pending_approval" and asked.json()["replayed"] is False
    approval = asked.json()["approval_id"]
    retry = _post(client, marketer, url, {"points": 5000, "reason": "apology"}, key)
    assert retry.json()["approval_id"] == approval and retry.json()["replayed"] is True
    assert _balance(client, marketer, account) == 0
    listed = client.get("/v1/loyalty/approvals", headers=admins[0]).json()
    assert any(a["id"] == approval and a["status"] == "pending" for a in listed)
    problem(client.get("/v1/loyalty/approvals", headers=marketer), 403)
    decide = f"/v1/loyalty/approvals/{approval}/approve"
    problem(_post(client, marketer, decide, None), 403)  # marketers do not approve
    decision_key = uuid.uuid4().hex
    ok = _post(client, admins[0], decide, None, decision_key)
    assert ok.status_code == 200, ok.text
    assert (ok.json()["status"], ok.json()["balance"]) == ("approved", 5000)
    assert ok.json()["entry_id"] is not None
    again = _post(client, admins[0], decide, None, decision_key)
    assert again.json()["replayed"] is True and again.json()["entry_id"] == ok.json()["entry_id"]
    assert _balance(client, marketer, account) == 5000
    problem(_post(client, admins[1], decide, None), 409)  # decided once, with any key
    entries = client.get(f"/v1/loyalty/accounts/{account}/entries", headers=marketer).json()
    assert [(e["kind"], e["points"], e["reference"]) for e in entries] == [
        ("earn", 5000, "apology")
    ]


def test_the_requester_cannot_approve_and_a_rejection_moves_nothing(
    client: TestClient, admins: tuple[dict[str, str], dict[str, str]]
) -> None:
    first, second = admins
    account = _account(client, first)
    asked = _post(client, first, f"/v1/loyalty/accounts/{account}/earn", {"points": 20000})
    assert asked.status_code == 202, asked.text
    approval = asked.json()["approval_id"]
    own = _post(client, first, f"/v1/loyalty/approvals/{approval}/approve", None)
    assert "another admin" in problem(own, 403)["detail"]
    no = _post(client, second, f"/v1/loyalty/approvals/{approval}/reject", {"note": "too generous"})
    assert no.status_code == 200, no.text
    assert (no.json()["status"], no.json()["note"], no.json()["entry_id"]) == (
        "rejected",
        "too generous",
        None,
    )
    problem(_post(client, second, f"/v1/loyalty/approvals/{approval}/approve", None), 409)
    assert _balance(client, first, account) == 0
    problem(_post(client, second, "/v1/loyalty/approvals/999999999/approve", None), 404)


def test_limits_and_threshold_are_settings(settings: Any, pg_pool: Any, token_for: Any) -> None:
    from cloud.api.app import create_app

    strict = settings.model_copy(
        update={"crm_goodwill_max_points_hq_marketer": 50, "crm_goodwill_approval_threshold": 10}
    )
    marketer = headers(token_for, Role.HQ_MARKETER)
    with TestClient(create_app(strict, pool=pg_pool)) as c:
        account = _account(c, marketer)
        url = f"/v1/loyalty/accounts/{account}/earn"
        assert _post(c, marketer, url, {"points": 10}).status_code == 200
        assert _post(c, marketer, url, {"points": 11}).status_code == 202
        problem(_post(c, marketer, url, {"points": 51}), 403)
