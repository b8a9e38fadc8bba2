"""The API fuzzed from its own OpenAPI document (schemathesis): never a 5xx, errors as problems."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from cloud.core.security import Role
from cloud.core.settings import Settings

EXAMPLES = 5
TAGS = ("system", "stores", "footfall", "chain", "devices")


@pytest.fixture(scope="module")
def api_schema(settings: Settings, pg_pool: Any) -> Any:
    """The footfall part of the real app's schema (the CRM teams fuzz theirs; the SSE stream
    never ends and is tested on its own)."""
    from cloud.api.app import create_app

    app = create_app(settings, pool=pg_pool)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return schema.include(tag=list(TAGS)).exclude(path_regex="/stream$")


def _operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    labels = {op.label for op in _operations(api_schema)}
    assert "GET /v1/stores/{store_id}/footfall/live" in labels
    assert "POST /v1/stores/{store_id}/devices" in labels and len(labels) >= 10


@pytest.mark.parametrize("role", [Role.ADMIN, Role.STORE_MANAGER])
def test_no_server_errors(api_schema: Any, token_for: Any, role: Role) -> None:
    """Every operation answers fuzzed input without a 5xx; every error is problem+json."""
    headers = token_for(role, {"s1"})
    for operation in _operations(api_schema):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
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
