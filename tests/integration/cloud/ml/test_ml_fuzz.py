"""The predictive endpoints fuzzed from the OpenAPI document: never a 5xx, errors as problems."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from cloud.core.security import Role
from cloud.core.settings import Settings

TAGS = ("predictions", "risk", "models", "forecasts")


@pytest.fixture(scope="module")
def ml_schema(settings: Settings, pg_pool: Any) -> Any:
    """The predictive part of the real app's schema on the session database."""
    from cloud.api.app import create_app

    app = create_app(settings, pool=pg_pool)
    return schemathesis.openapi.from_asgi("/openapi.json", app).include(tag=list(TAGS))


def test_every_predictive_operation_is_fuzzed(ml_schema: Any) -> None:
    labels = {r.ok().label for r in ml_schema.get_all_operations()}
    assert labels == {
        "GET /v1/predictions/customers/{customer_id}",
        "GET /v1/risk/customers",
        "GET /v1/models",
        "GET /v1/models/{name}",
        "POST /v1/models/churn/reset",
        "GET /v1/stores/{store_id}/footfall/forecast",
        "GET /v1/stores/{store_id}/footfall/anomalies",
    }


@pytest.mark.parametrize("role", [Role.ADMIN, Role.STORE_MANAGER])
def test_no_server_errors(ml_schema: Any, token_for: Any, role: Role) -> None:
    """Every operation answers fuzzed input without a 5xx; every error is problem+json."""
    headers = token_for(role, {"s1"})
    for result in ml_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.path, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"] == ["application/problem+json"]

        check()
