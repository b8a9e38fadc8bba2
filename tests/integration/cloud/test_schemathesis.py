"""The API fuzzed from its own OpenAPI document (schemathesis): never a 5xx, errors as problems."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.core.security import Role
from cloud.core.settings import Settings
from tests.integration.cloud.fuzzing import app_schema, fuzz, labels, operations

EXAMPLES = 5
TAGS = ("system", "stores", "footfall", "chain", "devices")


@pytest.fixture(scope="module")
def api_schema(settings: Settings, pg_pool: Any) -> Any:
    """The footfall part of the real app's schema (the CRM teams fuzz theirs; the SSE stream
    never ends and is tested on its own)."""
    return app_schema(settings, pg_pool).include(tag=list(TAGS)).exclude(path_regex="/stream$")


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    found = labels(api_schema)
    assert "GET /v1/stores/{store_id}/footfall/live" in found
    assert "POST /v1/stores/{store_id}/devices" in found and len(found) >= 10


@pytest.mark.parametrize("role", [Role.ADMIN, Role.STORE_MANAGER])
def test_no_server_errors(api_schema: Any, token_for: Any, role: Role) -> None:
    """Every operation answers fuzzed input without a 5xx; every error is problem+json."""
    fuzz(operations(api_schema), token_for(role, {"s1"}), max_examples=EXAMPLES)
