"""The CRM API fuzzed from its own OpenAPI document (schemathesis): never a 5xx, errors are
problem+json."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.core.security import Role
from cloud.core.settings import Settings
from tests.integration.cloud.fuzzing import app_schema, fuzz, labels, operations

EXAMPLES = 5
TAGS = ("customers", "consent", "touchpoints", "transactions", "lifecycle", "loyalty", "rewards")


@pytest.fixture(scope="module")
def crm_schema(settings: Settings, pg_pool: Any) -> Any:
    """The CRM part of the real app's schema."""
    return app_schema(settings, pg_pool).include(tag=list(TAGS))


def test_every_crm_operation_is_fuzzed(crm_schema: Any) -> None:
    found = labels(crm_schema)
    assert "POST /v1/transactions" in found and "POST /v1/customers/import" in found
    assert len(found) >= 25


@pytest.mark.parametrize("role", [Role.HQ_MARKETER, Role.STORE_MANAGER])
def test_no_server_errors(crm_schema: Any, token_for: Any, role: Role) -> None:
    """Every operation answers fuzzed input without a 5xx; every error is problem+json."""
    fuzz(operations(crm_schema), token_for(role, {"s1"}), max_examples=EXAMPLES)
