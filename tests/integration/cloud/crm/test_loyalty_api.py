"""Loyalty over HTTP: idempotent retries, parallel burns, transfers, tiers, reversal, rewards."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.crm.identity.service import ingest_record
from cloud.crm.loyalty import ledger, tiers
from cloud.crm.loyalty.program import LoyaltyProgram, Tier
from cloud.db.repositories import crm_loyalty as repo


def _account(client: TestClient, marketer: dict[str, str], points: int = 0) -> int:
    email = f"{uuid.uuid4().hex}@loyal.org"
    made = client.post("/v1/customers", json={"identifiers": {"email": email}}, headers=marketer)
    assert made.status_code == 201, made.text
    res = client.post(
        "/v1/loyalty/accounts", json={"profile_id": made.json()["profile_id"]}, headers=marketer
    )
    assert res.status_code == 201, res.text
    account = int(res.json()["id"])
    if points:
        _move(client, marketer, f"/v1/loyalty/accounts/{account}/earn", {"points": points})
    return account


def _move(
    client: TestClient,
    headers: dict[str, str],
    url: str,
    body: dict[str, Any],
    key: str | None = None,
) -> Any:
    return client.post(
        url, json=body, headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex}
    )


def test_same_burn_twice_moves_points_once(client: TestClient, marketer: dict[str, str]) -> None:
    account = _account(client, marketer, 100)
    url = f"/v1/loyalty/accounts/{account}/burn"
    first = _move(client, marketer, url, {"points": 30}, key="burn-1")
    again = _move(client, marketer, url, {"points": 30}, key="burn-1")
    assert first.status_code == again.status_code == 200
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert again.json()["balance"] == first.json()["balance"] == 70
    other = _move(client, marketer, url, {"points": 31}, key="burn-1")
    assert other.status_code == 409 and other.json()["type"].endswith("/idempotency-key-reused")
    assert client.get(f"/v1/loyalty/accounts/{account}", headers=marketer).json()["balance"] == 70


def test_missing_idempotency_key_is_a_problem(client: TestClient, marketer: dict[str, str]) -> None:
    account = _account(client, marketer, 10)
    res = client.post(f"/v1/loyalty/accounts/{account}/burn", json={"points": 1}, headers=marketer)
    assert res.status_code == 422
    assert any("idempotency-key" in e["field"].lower() for e in res.json()["errors"])


def test_sixteen_parallel_burn_requests_never_overdraw(
    client: TestClient, marketer: dict[str, str]
) -> None:
    account = _account(client, marketer, 100)
    url = f"/v1/loyalty/accounts/{account}/burn"
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(
            pool.map(lambda _: _move(client, marketer, url, {"points": 15}).status_code, range(16))
        )
    assert codes.count(200) == 6 and codes.count(409) == 10
    assert client.get(f"/v1/loyalty/accounts/{account}", headers=marketer).json()["balance"] == 10


def test_bad_points_and_overdraw_are_clear_problems(
    client: TestClient, marketer: dict[str, str]
) -> None:
    account = _account(client, marketer, 5)
    neg = _move(client, marketer, f"/v1/loyalty/accounts/{account}/earn", {"points": -3})
    assert neg.status_code == 422 and "positive" in neg.json()["detail"]
    over = _move(client, marketer, f"/v1/loyalty/accounts/{account}/burn", {"points": 6})
    assert over.status_code == 409 and over.json()["type"].endswith("/insufficient-points")
    missing = _move(client, marketer, "/v1/loyalty/accounts/999999999/burn", {"points": 1})
    assert missing.status_code == 404
    entries = client.get(f"/v1/loyalty/accounts/{account}/entries", headers=marketer).json()
    assert [e["kind"] for e in entries] == ["earn"]


def test_transfer_keeps_expiry_and_is_idempotent(
    client: TestClient, marketer: dict[str, str]
) -> None:
    a, b = _account(client, marketer, 50), _account(client, marketer)
    body = {"from_account_id": a, "to_account_id": b, "points": 20}
    first = _move(client, marketer, "/v1/loyalty/transfers", body, key=f"t-{a}")
    retry = _move(client, marketer, "/v1/loyalty/transfers", body, key=f"t-{a}")
    assert first.status_code == 200 and retry.json()["replayed"] is True
    assert client.get(f"/v1/loyalty/accounts/{a}", headers=marketer).json()["balance"] == 30
    assert client.get(f"/v1/loyalty/accounts/{b}", headers=marketer).json()["balance"] == 20


def test_rewards_reserve_cancel_and_stock(client: TestClient, marketer: dict[str, str]) -> None:
    account = _account(client, marketer, 100)
    code = f"MUG-{uuid.uuid4().hex[:6]}"
    reward = client.post(
        "/v1/rewards",
        json={"code": code, "name": "Mug", "cost_points": 40, "stock": 1},
        headers=marketer,
    ).json()
    url = f"/v1/rewards/{reward['id']}/redemptions"
    red = _move(client, marketer, url, {"account_id": account})
    assert red.status_code == 201, red.text
    sold_out = _move(client, marketer, url, {"account_id": account})
    assert sold_out.status_code == 409 and sold_out.json()["type"].endswith("/out-of-stock")
    assert client.get(f"/v1/loyalty/accounts/{account}", headers=marketer).json()["balance"] == 60
    cancel = _move(client, marketer, f"/v1/redemptions/{red.json()['id']}/cancel", {})
    assert cancel.json()["status"] == "cancelled"
    assert client.get(f"/v1/loyalty/accounts/{account}", headers=marketer).json()["balance"] == 100
    again = _move(client, marketer, url, {"account_id": account})
    assert again.status_code == 201
    done = client.post(f"/v1/redemptions/{again.json()['id']}/fulfil", headers=marketer)
    assert done.json()["status"] == "fulfilled"
    twice = _move(client, marketer, f"/v1/redemptions/{again.json()['id']}/cancel", {})
    assert twice.status_code == 409


def test_store_manager_cannot_touch_loyalty(client: TestClient, token_for: Any) -> None:
    res = client.post(
        "/v1/loyalty/accounts/1/earn",
        json={"points": 5},
        headers={**token_for(Role.STORE_MANAGER, {"s1"}), "Idempotency-Key": "k"},
    )
    assert res.status_code == 403


def _tier(conn: psycopg.Connection[Any], account_id: int) -> str:
    account = repo.get_account(conn, account_id)
    assert account is not None
    return str(account["tier"])


def test_tier_upgrades_at_once_and_downgrades_only_at_period_end(
    conn: psycopg.Connection[Any],
) -> None:
    program = LoyaltyProgram(
        tiers=[Tier(name="member", threshold=0), Tier(name="gold", threshold=100)]
    )
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    who = ingest_record(conn, source="api", identifiers={"email": f"{uuid.uuid4().hex}@t.org"})
    acct = int(ledger.open_account(conn, profile_id=who.profile_id, now=t0, program=program)["id"])
    ledger.lock_account(conn, acct)
    ledger.credit(conn, account_id=acct, points=150, qualifying=150, now=t0, program=program)
    assert _tier(conn, acct) == "gold"  # at once
    mid = t0 + timedelta(days=400)  # qualifying points left the window, but the period runs on
    assert (
        tiers.review_account(conn, account_id=acct, now=t0 + timedelta(days=200), program=program)
        is None
    )
    assert _tier(conn, acct) == "gold"
    assert tiers.review_account(conn, account_id=acct, now=mid, program=program) == "member"
    history = [(h["from_tier"], h["to_tier"]) for h in repo.tier_history(conn, acct)]
    assert history == [(None, "member"), ("member", "gold"), ("gold", "member")]
    conn.rollback()


def test_an_upgrade_at_period_end_is_kept_in_the_tier_history(
    conn: psycopg.Connection[Any],
) -> None:
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    strict = LoyaltyProgram(
        tiers=[Tier(name="member", threshold=0), Tier(name="gold", threshold=1000)]
    )
    who = ingest_record(conn, source="api", identifiers={"email": f"{uuid.uuid4().hex}@t.org"})
    acct = int(ledger.open_account(conn, profile_id=who.profile_id, now=t0, program=strict)["id"])
    ledger.lock_account(conn, acct)
    day2 = t0 + timedelta(days=1)
    ledger.credit(conn, account_id=acct, points=150, qualifying=150, now=day2, program=strict)
    assert _tier(conn, acct) == "member"
    # the programme lowers the gold threshold; the review at period end upgrades, on the record
    lenient = LoyaltyProgram(
        tiers=[Tier(name="member", threshold=0), Tier(name="gold", threshold=100)]
    )
    end = t0 + timedelta(days=lenient.tier_window_days)
    assert tiers.review_account(conn, account_id=acct, now=end, program=lenient) == "gold"
    assert _tier(conn, acct) == "gold"
    history = [(h["from_tier"], h["to_tier"]) for h in repo.tier_history(conn, acct)]
    assert history == [(None, "member"), ("member", "gold")]
    conn.rollback()


def test_spend_basis_qualifies_by_currency_units(conn: psycopg.Connection[Any]) -> None:
    program = LoyaltyProgram(
        tier_basis="spend",
        tiers=[Tier(name="member", threshold=0), Tier(name="gold", threshold=10)],
    )
    who = ingest_record(conn, source="api", identifiers={"email": f"{uuid.uuid4().hex}@t.org"})
    acct = int(ledger.open_account(conn, profile_id=who.profile_id, program=program)["id"])
    ledger.lock_account(conn, acct)
    ledger.credit(conn, account_id=acct, points=1, qualifying=12, program=program)
    assert _tier(conn, acct) == "gold"
    with pytest.raises(ValueError, match="threshold 0"):
        LoyaltyProgram(tiers=[Tier(name="gold", threshold=10)])
    conn.rollback()


def test_concurrent_retries_with_one_key_move_points_once(
    client: TestClient, marketer: dict[str, str]
) -> None:
    account = _account(client, marketer, 100)
    url = f"/v1/loyalty/accounts/{account}/burn"
    key = f"same-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(lambda _: _move(client, marketer, url, {"points": 25}, key=key), range(8))
        )
    assert {r.status_code for r in results} == {200}
    assert [r.json()["replayed"] for r in results].count(False) == 1
    assert {r.json()["balance"] for r in results} == {75}
    assert client.get(f"/v1/loyalty/accounts/{account}", headers=marketer).json()["balance"] == 75
