"""Regressions for the 5xx the whole-API fuzzer found: each bad request now gets a 4xx problem."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.api.problems import database_error
from cloud.core.errors import ConflictError, InvalidInputError
from cloud.core.security import Role

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def admin(token_for: Any) -> dict[str, str]:
    """Auth headers of an admin."""
    headers: dict[str, str] = token_for(Role.ADMIN)
    return headers


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def _reward() -> dict[str, Any]:
    return {"code": f"r-{uuid.uuid4().hex[:12]}", "name": "Mug", "cost_points": 10, "stock": 1}


def test_reward_cost_beyond_integer_range_is_422(client: TestClient, admin: dict[str, str]) -> None:
    """POST /v1/rewards with cost_points 2**31 used to fail in PostgreSQL with a 500."""
    for field in ("cost_points", "stock"):
        body = {**_reward(), field: 2**31}
        problem = _problem(client.post("/v1/rewards", json=body, headers=admin), 422)
        assert any(e["field"] == f"body.{field}" for e in problem["errors"])


def test_reward_with_nul_byte_is_422_and_stores_nothing(
    client: TestClient, admin: dict[str, str]
) -> None:
    """A NUL byte in text (PostgreSQL cannot store it) used to be a 500; now the schema refuses it
    (its pattern says so) with a problem naming the field."""
    body = {**_reward(), "name": "Mu\x00g"}
    problem = _problem(client.post("/v1/rewards", json=body, headers=admin), 422)
    assert [e["field"] for e in problem["errors"]] == ["body.name"]
    listed = client.get("/v1/rewards", headers=admin).json()
    assert body["code"] not in {r["code"] for r in listed}
    fine = client.post("/v1/rewards", json={**body, "name": "Mug"}, headers=admin)
    assert fine.status_code == 201, fine.text


def test_points_beyond_integer_range_are_422(client: TestClient, admin: dict[str, str]) -> None:
    """Earn, burn and transfer reject amounts no column can hold before touching the ledger."""
    for url, body in (
        ("/v1/loyalty/accounts/1/earn", {"points": 2**31}),
        ("/v1/loyalty/accounts/1/burn", {"points": 2**63}),
        ("/v1/loyalty/transfers", {"from_account_id": 2**63, "to_account_id": 1, "points": 1}),
    ):
        headers = {**admin, "Idempotency-Key": uuid.uuid4().hex}
        _problem(client.post(url, json=body, headers=headers), 422)


BEYOND_BIGINT = 2**64


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/customers/{id}", None),
        ("get", "/v1/customers/{id}/merges", None),
        ("put", "/v1/customers/{id}/consents/email/marketing", {"granted": True, "source": "web"}),
        ("post", "/v1/identities/merges/{id}/undo", None),
        ("get", "/v1/loyalty/accounts/{id}/entries", None),
        ("post", "/v1/loyalty/accounts/{id}/earn", {"points": 1}),
        ("post", "/v1/rewards/{id}/redemptions", {"account_id": 1}),
        ("post", "/v1/redemptions/{id}/fulfil", None),
        ("post", "/v1/transactions/{id}/reverse", None),
        ("post", "/v1/loyalty/accounts", {"profile_id": -(2**63) - 1}),
        ("get", "/v1/customers?after_id={id}", None),
    ],
)
def test_ids_beyond_bigint_are_422(
    client: TestClient, admin: dict[str, str], method: str, path: str, body: Any
) -> None:
    """An id no bigint column can hold used to reach PostgreSQL as numeric (no such function or
    operator: a 500); now the path, query or body validation rejects it."""
    headers = {**admin, "Idempotency-Key": uuid.uuid4().hex}
    url = path.format(id=BEYOND_BIGINT)
    _problem(client.request(method, url, json=body, headers=headers), 422)


def test_transaction_amount_beyond_numeric_is_422(
    client: TestClient, admin: dict[str, str]
) -> None:
    """A total of 1e30 used to raise decimal.InvalidOperation (a 500) when checking its cents."""
    sale = {
        "store_id": "s-none", "external_id": uuid.uuid4().hex, "currency": "EUR",
        "occurred_at": "2026-01-01T10:00:00Z", "identifiers": {"email": "a@fuzz.org"},
    }  # fmt: skip
    for amount in ("1e30", "-1e30", "1000000000000.00"):
        res = client.post("/v1/transactions", json={**sale, "total_amount": amount}, headers=admin)
        problem = _problem(res, 422)
        assert "total_amount" in res.text, problem


def test_amount_helper_rejects_out_of_range() -> None:
    """The money helper itself (used by the CSV and task paths too) names the field, never raises
    decimal.InvalidOperation."""
    from cloud.crm.errors import CrmInvalidInputError
    from cloud.crm.money import to_amount

    assert str(to_amount("999999999999.99", field="total")) == "999999999999.99"
    for bad in ("1e30", "-1e12", "NaN", "1.001"):
        with pytest.raises(CrmInvalidInputError, match="total"):
            to_amount(bad, field="total")


def test_csv_import_that_is_not_utf8_is_422(client: TestClient, admin: dict[str, str]) -> None:
    """A CSV in another encoding used to fail with UnicodeDecodeError (a 500)."""
    data = "email,first_name\nzoe@fuzz.org,Zoë\n".encode("latin-1")
    headers = {**admin, "Content-Type": "text/csv"}
    problem = _problem(client.post("/v1/customers/import", content=data, headers=headers), 422)
    assert "UTF-8" in problem["detail"]


def test_csv_import_with_a_stray_carriage_return_is_422(
    client: TestClient, admin: dict[str, str]
) -> None:
    """A lone CR inside the header used to raise csv.Error (a 500)."""
    headers = {**admin, "Content-Type": "text/csv"}
    res = client.post(
        "/v1/customers/import", content=b"email\rphone\nzoe@fuzz.org\n", headers=headers
    )
    assert "header" in _problem(res, 422)["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/stores/{store}/footfall?from=0001-01-01T00:00:00&to=0001-01-02T00:00:00",
        "/v1/stores/{store}/footfall?from=0001-01-01T00:00:00%2B14:00&to=0001-01-02T00:00:00",
        "/v1/stores/{store}/engagement?to=0001-01-01T00:00:00%2B14:00",
        "/v1/chain/footfall?from=0001-01-01T00:00:00%2B14:00&to=0001-01-02T00:00:00Z",
        "/v1/chain/footfall?from=9999-12-31T00:00:00-14:00&to=9999-12-31T23:59:59-14:00",
    ],
)
def test_footfall_ranges_at_the_ends_of_the_calendar_are_422(
    client: TestClient, admin: dict[str, str], url: str
) -> None:
    """Ranges near year 1 used to overflow (OverflowError: date value out of range, a 500) when
    the service looked one week back; ranges are now bounded to supported years."""
    store = f"rg-{uuid.uuid4().hex[:8]}"
    made = client.post("/v1/stores", json={"id": store, "name": "Regression"}, headers=admin)
    assert made.status_code == 201, made.text
    problem = _problem(client.get(url.format(store=store), headers=admin), 422)
    assert "between" in problem["detail"]


def test_stream_resume_id_that_is_no_number_starts_from_now(
    client: TestClient, admin: dict[str, str], pg_pool: Any
) -> None:
    """A Last-Event-ID of '²' (a digit to str.isdigit, not to int) used to raise ValueError before
    the stream opened (a 500); ids that are no bigint now resume from the latest event."""
    from cloud.footfall.stream import _start

    store = f"rg-{uuid.uuid4().hex[:8]}"
    made = client.post("/v1/stores", json={"id": store, "name": "Regression"}, headers=admin)
    assert made.status_code == 201, made.text
    latest = _start(pg_pool, store, None)
    for bad in ("\u00b2", "\u0661", "9" * 30, "-1", ""):
        assert _start(pg_pool, store, bad) == latest
    assert _start(pg_pool, store, " 42 ") == 42


def test_non_ascii_request_id_is_replaced(client: TestClient) -> None:
    """An X-Request-ID of non-ASCII bytes used to be echoed back as a header no HTTP client can
    read; only printable ASCII ids are echoed now, others get a fresh id."""
    res = client.get("/healthz", headers={b"X-Request-ID": b"\xff" * 10})
    assert res.status_code == 200
    assert res.headers["x-request-id"].isascii() and len(res.headers["x-request-id"]) == 32
    echoed = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"


def _error_of(pg_pool: Any, sql: str) -> psycopg.Error:
    with pg_pool.connection() as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(sql)
    return caught.value


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 2147483648::integer", InvalidInputError),
        ("SELECT 'x'::bigint", InvalidInputError),
        ("SELECT '\\u0000'::jsonb", InvalidInputError),
        ("CREATE TEMP TABLE t (a int CHECK (a > 0)); INSERT INTO t VALUES (0)", InvalidInputError),
        ("CREATE TEMP TABLE t (a int NOT NULL); INSERT INTO t VALUES (NULL)", InvalidInputError),
        ("CREATE TEMP TABLE t (a int UNIQUE); INSERT INTO t VALUES (1), (1)", ConflictError),
        (
            "CREATE TEMP TABLE p (a int PRIMARY KEY); CREATE TEMP TABLE c (a int REFERENCES p);"
            " INSERT INTO c VALUES (1)",
            InvalidInputError,
        ),
        (
            "CREATE TEMP TABLE p (a int PRIMARY KEY); CREATE TEMP TABLE c (a int REFERENCES p);"
            " INSERT INTO p VALUES (1); INSERT INTO c VALUES (1); DELETE FROM p",
            ConflictError,
        ),
    ],
)
def test_database_errors_from_bad_input_are_client_errors(
    pg_pool: Any, sql: str, expected: type[Exception]
) -> None:
    """Every database error bad input can cause maps to its 4xx; the class decides, not the text."""
    error = database_error(_error_of(pg_pool, sql))
    assert type(error) is expected, error


def test_server_faults_stay_server_errors(pg_pool: Any) -> None:
    """A broken query is the server's fault: no client error stands for it (it stays a 500)."""
    assert database_error(_error_of(pg_pool, "SELECT * FROM no_such_table_g")) is None
    assert database_error(_error_of(pg_pool, "SELEC 1")) is None
