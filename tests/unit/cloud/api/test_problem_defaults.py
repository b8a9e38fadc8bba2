"""The shared error statuses an operation is declared with (pure OpenAPI post-processing)."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.api.problems import READ_ONLY, ProblemDefaults, add_problem_responses


def _doc(method: str, **extra: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"responses": {"200": {"description": "ok"}}, **extra}
    return {"paths": {"/x": {method: operation}}}


@pytest.mark.parametrize(
    ("method", "extra", "conflict_declared"),
    [
        ("post", {}, True),  # a write may conflict
        ("delete", {}, True),
        ("get", {}, False),  # a read never does
        ("post", READ_ONLY, False),  # a query sent as a body reads only
    ],
)
def test_409_is_declared_only_where_a_write_can_conflict(
    method: str, extra: dict[str, Any], conflict_declared: bool
) -> None:
    doc = add_problem_responses(_doc(method, **extra), ProblemDefaults())
    responses = doc["paths"]["/x"][method]["responses"]
    assert ("409" in responses) is conflict_declared
    assert "400" in responses  # the statuses every operation has stay declared
