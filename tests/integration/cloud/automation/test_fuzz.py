"""The automation routes under schemathesis: fuzzed bodies, queries and ids never get a 5xx,
errors are problem bodies and 2xx bodies match their documented schema."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.core.settings import Settings
from tests.integration.cloud.fuzzing import app_schema, fuzz, operations

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_automation_routes_get_no_server_errors(
    settings: Settings, pg_pool: Any, client: TestClient, token_for: Any
) -> None:
    admin = token_for(Role.ADMIN)
    body = {
        "name": "fuzz-seed",
        "definition": {"trigger": {"kind": "api"},
                       "nodes": [{"id": "start", "type": "entry", "next": "w"},
                                 {"id": "w", "type": "wait", "seconds": 60}]},
    }  # fmt: skip
    created = client.post("/v1/automation/workflows", json=body, headers=admin)
    assert created.status_code in (201, 409), created.text
    listed = client.get("/v1/automation/workflows", headers=admin).json()
    wid = next(w["id"] for w in listed if w["name"] == "fuzz-seed")
    schema = app_schema(settings, pg_pool).include(tag="automation")
    ops = operations(schema)
    assert len(ops) >= 12
    fuzz(ops, admin, max_examples=3, conformance=True, path_values={"workflow_id": wid})
