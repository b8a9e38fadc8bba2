"""Shared schemathesis setup for the API fuzz tests: the real app's schema, one bounded run per
operation, and the checks every answer must pass (never a 5xx, every error is problem+json)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from cloud.core.settings import Settings

PROBLEM_MEDIA_TYPE = "application/problem+json"


def app_schema(settings_: Settings, pool: Any) -> Any:
    """The OpenAPI schema of create_app() on `pool`, loaded in-process (ASGI)."""
    from cloud.api.app import create_app

    app = create_app(settings_, pool=pool)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(schema: Any) -> list[Any]:
    """Every operation of `schema`; a schema error fails the test instead of being skipped."""
    return [result.ok() for result in schema.get_all_operations()]


def labels(schema: Any) -> set[str]:
    """The 'METHOD /path' labels of every operation in `schema`."""
    return {op.label for op in operations(schema)}


def check_response(case: Any, response: Any, *, conformance: bool = False) -> None:
    """Fail on a 5xx or a non-problem error body; with `conformance`, also on a 2xx that does
    not match its documented schema."""
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, (where, case.body, case.query, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == [PROBLEM_MEDIA_TYPE], (where, response.text)
    elif conformance:
        case.operation.validate_response(response)


def fuzz(
    ops: Iterable[Any],
    headers: Mapping[str, str],
    *,
    max_examples: int,
    conformance: bool = False,
    path_values: Mapping[str, Any] | None = None,
) -> None:
    """Run every operation in `ops` on `max_examples` generated cases (derandomized, no deadline).

    `path_values` replaces the generated path parameters of those names (ids of seeded rows), so
    the fuzzed bodies and queries reach the code behind the not-found checks.
    """
    known = dict(path_values or {})
    for operation in ops:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=max_examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            if case.path_parameters:
                case.path_parameters = {
                    name: known.get(name, value) for name, value in case.path_parameters.items()
                }
            response = case.call(headers={**(case.headers or {}), **headers})
            check_response(case, response, conformance=conformance)

        check()
