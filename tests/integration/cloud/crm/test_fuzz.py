"""The CRM API fuzzed from its own OpenAPI document (schemathesis): never a 5xx, errors are
problem+json."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from cloud.core.security import Role
from cloud.core.settings import Settings

EXAMPLES = 5
TAGS = ("customers", "consent", "touchpoints", "transactions", "lifecycle", "loyalty", "rewards")


@pytest.fixture(scope="module")
def crm_schema(settings: Settings, pg_pool: Any) -> Any:
    """The CRM part of the real app's schema."""
    from cloud.api.app import create_app

    app = create_app(settings, pool=pg_pool)
    return schemathesis.openapi.from_asgi("/openapi.json", app).include(tag=list(TAGS))


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def test_every_crm_operation_is_fuzzed(crm_schema: Any) -> None:
    labels = {op.label for op in _operations(crm_schema)}
    assert "POST /v1/transactions" in labels and "POST /v1/customers/import" in labels
    assert len(labels) >= 25


@pytest.mark.parametrize("role", [Role.HQ_MARKETER, Role.STORE_MANAGER])
def test_no_server_errors(crm_schema: Any, token_for: Any, role: Role) -> None:
    """Every operation answers fuzzed input without a 5xx; every error is problem+json."""
    headers = token_for(role, {"s1"})
    for operation in _operations(crm_schema):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call(headers={**headers, **(case.headers or {})})
            assert response.status_code < 500, (case.method, case.path, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"] == ["application/problem+json"]

        check()
