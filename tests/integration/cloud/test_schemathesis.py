"""The OpenAPI document says what the API answers: errors are problem+json and declared, wrong
methods answer 405 with every method of the path, date-times are parsed strictly; and the
footfall part fuzzed for every role (schemathesis) never answers a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.core.settings import Settings
from tests.integration.cloud.fuzzing import PROBLEM_MEDIA_TYPE, app_schema, fuzz, labels, operations

EXAMPLES = 5
TAGS = ("system", "stores", "footfall", "chain", "devices")
PROBLEM = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture(scope="module")
def api_schema(settings: Settings, pg_pool: Any) -> Any:
    """The footfall part of the real app's schema (the CRM teams fuzz theirs; the SSE stream
    never ends and is tested on its own)."""
    return app_schema(settings, pg_pool).include(tag=list(TAGS)).exclude(path_regex="/stream$")


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    """The app's OpenAPI document, as served."""
    doc: dict[str, Any] = client.app.openapi()  # type: ignore[attr-defined]
    return doc


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = document["paths"][path][method]
    return op


def test_every_error_response_is_a_declared_problem(document: dict[str, Any]) -> None:
    """Each 4xx/5xx of each operation is problem+json with the Problem schema (FastAPI's
    application/json 422 is gone), and the component exists."""
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, op in item.items():
            for code, response in op["responses"].items():
                if code[0] in "45":
                    assert response["content"] == PROBLEM, (method, path, code)


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        # secured, path parameter, body, write
        (
            "post",
            "/v1/stores/{store_id}/devices",
            {"400", "401", "403", "404", "409", "413", "422"},
        ),
        # secured, query parameters only, no write
        ("get", "/v1/chain/footfall", {"400", "401", "403", "422"}),
        # route-specific: an identifier nobody holds
        ("get", "/v1/customers/lookup", {"404", "422"}),
        # public, no input
        ("get", "/healthz", {"400"}),
    ],
)
def test_shared_error_statuses_are_declared(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    """The app declares the statuses operations share from what they have (security, path
    parameters, a body, a write); routes add their own."""
    declared = set(_operation(document, method, path)["responses"])
    assert statuses <= declared, statuses - declared
    if path == "/healthz":
        assert not {"401", "403", "404", "409", "422"} & declared


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/stores", "GET, POST"),
        ("DELETE", "/v1/stores", "GET, POST"),
        ("PATCH", "/v1/stores/s1/devices", "GET, POST"),
        ("GET", "/v1/customers/import", "POST"),
        ("DELETE", "/v1/customers/export", "GET"),
    ],
)
def test_wrong_method_is_405_listing_every_method_of_the_path(
    client: TestClient, token_for: Any, method: str, path: str, allow: str
) -> None:
    """405 problem with an Allow header naming every route's methods at that path (GET on the
    POST-only import is no longer read as a profile id and refused with 422)."""
    response = client.request(method, path, headers=token_for(Role.ADMIN))
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/stores/s1/footfall", {"to": "0.5"}),
        ("/v1/stores/s1/engagement", {"from": "1700000000"}),
        ("/v1/stores/s1/demographics", {"to": "nan"}),
        ("/v1/stores/s1/footfall/anomalies", {"since": "0.5"}),
        ("/v1/chain/footfall", {"from": "1e9"}),
        ("/v1/lifecycle/funnel", {"start": "0", "end": "2026-01-02T00:00:00Z"}),
    ],
)
def test_datetime_query_parameters_refuse_numbers(
    client: TestClient, token_for: Any, path: str, query: dict[str, str]
) -> None:
    """A number is not a `format: date-time` (pydantic would read it as a Unix timestamp)."""
    response = client.get(path, params=query, headers=token_for(Role.ADMIN))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "ISO 8601" in response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/touchpoints",
            {"channel": "web", "event": "view", "identifiers": {"email": "n@example.org"},
             "occurred_at": 0.5},
        ),
        (
            "/v1/transactions",
            {"store_id": "s1", "external_id": "n-1", "currency": "EUR", "total_amount": "1.00",
             "identifiers": {"email": "n@example.org"}, "occurred_at": 1700000000},
        ),
        (
            "/v1/customers",
            {"identifiers": {"email": "n@example.org"}, "attributes": {"birth_date": 0}},
        ),
    ],
)  # fmt: skip
def test_body_dates_refuse_numbers(
    client: TestClient, token_for: Any, path: str, body: dict[str, Any]
) -> None:
    """A JSON number is not a `format: date-time` or `date` string in a body either."""
    response = client.post(path, json=body, headers=token_for(Role.ADMIN))
    assert response.status_code == 422, response.text
    assert "ISO 8601" in response.text


def test_datetime_query_parameters_accept_iso_8601(client: TestClient, token_for: Any) -> None:
    """With and without an offset (store local time), as documented."""
    for start in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00"):
        response = client.get(
            "/v1/chain/footfall",
            params={"from": start, "to": "2026-01-02T00:00:00Z"},
            headers=token_for(Role.ADMIN),
        )
        assert response.status_code == 200, (start, response.text)


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    found = labels(api_schema)
    assert "GET /v1/stores/{store_id}/footfall/live" in found
    assert "POST /v1/stores/{store_id}/devices" in found and len(found) >= 10


@pytest.mark.parametrize("role", [Role.ADMIN, Role.STORE_MANAGER])
def test_no_server_errors(api_schema: Any, token_for: Any, role: Role) -> None:
    """Every operation answers fuzzed input without a 5xx; every error is problem+json."""
    fuzz(operations(api_schema), token_for(role, {"s1"}), max_examples=EXAMPLES)


def test_consent_path_names_its_channels_and_purposes(document: dict[str, Any]) -> None:
    """The document lists the channels and purposes a consent may name (schema-valid values
    were refused with 422 before)."""
    op = _operation(document, "put", "/v1/customers/{profile_id}/consents/{channel}/{purpose}")
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    for name, value in (("channel", "email"), ("purpose", "marketing")):
        schema = params[name]
        ref = schema["$ref"].rpartition("/")[2] if "$ref" in schema else None
        listed = document["components"]["schemas"][ref]["enum"] if ref else schema["enum"]
        assert value in listed


@pytest.mark.parametrize("granted", [1, "true", "yes"])
def test_consent_grant_is_a_json_boolean(
    client: TestClient, token_for: Any, granted: object
) -> None:
    """`granted` is a JSON true/false; 1 or "yes" is not read as a grant."""
    admin = token_for(Role.ADMIN)
    made = client.post(
        "/v1/customers", json={"identifiers": {"email": "strict-bool@example.org"}}, headers=admin
    )
    assert made.status_code in (200, 201), made.text
    response = client.put(
        f"/v1/customers/{made.json()['profile_id']}/consents/sms/marketing",
        json={"granted": granted, "source": "test"},
        headers=admin,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
