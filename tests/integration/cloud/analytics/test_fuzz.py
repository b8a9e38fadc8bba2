"""/v1/analytics fuzzed from its own OpenAPI document (schemathesis): never a 5xx, errors are
problem+json."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.core.settings import Settings
from tests.integration.cloud.fuzzing import app_schema, fuzz, labels, operations


@pytest.fixture(scope="module")
def analytics_schema(settings: Settings, pg_pool: Any) -> Any:
    """The analytics part of the real app's schema."""
    return app_schema(settings, pg_pool).include(tag=["analytics"])


def test_every_analytics_operation_is_fuzzed(analytics_schema: Any) -> None:
    assert labels(analytics_schema) == {
        f"POST /v1/analytics/{p}"
        for p in ("funnels", "funnels/dropoffs", "retention", "paths", "trends")
    }


def test_no_server_errors(analytics_schema: Any, marketer: dict[str, str]) -> None:
    """Every operation answers fuzzed input without a 5xx, and 2xx bodies match the schema."""
    fuzz(operations(analytics_schema), marketer, max_examples=25, conformance=True)
