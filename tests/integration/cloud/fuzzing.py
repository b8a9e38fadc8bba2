"""Shared schemathesis setup for the API fuzz tests: the real app's schema, one bounded run per
operation, and the checks every answer must pass (never a 5xx, every error is problem+json)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from cloud.core.settings import Settings

PROBLEM_MEDIA_TYPE = "application/problem+json"


def app_schema(settings_: Settings, pool: Any, config: SchemathesisConfig | None = None) -> Any:
    """The OpenAPI schema of create_app() on `pool`, loaded in-process (ASGI)."""
    from cloud.api.app import create_app

    app = create_app(settings_, pool=pool)
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


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


@dataclass
class RunReport:
    """What one schemathesis run covered and the failures it found."""

    operations: set[str] = field(default_factory=set)
    checks: set[str] = field(default_factory=set)
    cases: int = 0
    #: "METHOD /path [check] title" -> the first message; a failing check counts once per case.
    failures: dict[str, str] = field(default_factory=dict)
    failed_checks: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line of figures."""
        return (
            f"{len(self.operations)} operations, {len(self.checks)} checks, {self.cases} cases, "
            f"{self.failed_checks} failed checks ({len(self.failures)} distinct)"
        )


_RANGE = "a range's end must come after its start (OpenAPI cannot relate two parameters)"
_IDENTIFIERS = "identifier kinds and values must be known and normalise (e-mail, E.164 phone)"
_POINTS = "points must be positive; the ledger checks it, the schema states no minimum (TODO)"
_BIGINT = (
    "ids up to 2**63-1: schemathesis reads 9223372036854775999 as a double (<= the maximum) "
    "and calls it valid; pydantic compares exactly"
)
_SEGMENT_RULE = (
    "a rule names only known attributes and event properties (a registry, plus tracking plans),"
    " with values of the attribute's type, at most 8 levels deep"
)
_SEGMENT_CALL = (
    "a call names userId or anonymousId; track needs event, alias previousId and userId; a"
    " timestamp (corrected by sentAt) at most 730 days old and 1 day ahead; the type in the body"
    " matches the path; a source in reject mode refuses what breaks its tracking plan"
)
#: Operations that answer 422 to some schema-valid requests, and the rule each applies that the
#: document cannot state. Everywhere else schema-valid data must be accepted (2xx) or refused
#: only for a state of the data (401, 403, 404, 409, 429).
SEMANTIC_422: dict[str, str] = {
    "GET /v1/chain/footfall": _RANGE,
    "GET /v1/stores/{store_id}/footfall": _RANGE,
    "GET /v1/stores/{store_id}/engagement": _RANGE,
    "GET /v1/stores/{store_id}/demographics": _RANGE,
    "GET /v1/lifecycle/funnel": _RANGE,
    "GET /v1/customers/lookup": _IDENTIFIERS,
    "POST /v1/customers": _IDENTIFIERS,
    "POST /v1/touchpoints": _IDENTIFIERS,
    "POST /v1/transactions": _IDENTIFIERS + "; an ISO 4217 currency; amounts as decimals",
    "POST /v1/stores": "the time zone must be an IANA name the server knows",
    "POST /v1/customers/import": "the body must be UTF-8 CSV with a header line of known columns",
    "POST /v1/loyalty/accounts/{account_id}/earn": _POINTS,
    "POST /v1/loyalty/accounts/{account_id}/burn": _POINTS,
    "POST /v1/loyalty/transfers": _POINTS + "; " + _BIGINT,
    "POST /v1/loyalty/accounts": _BIGINT,
    "POST /v1/rewards/{reward_id}/redemptions": _BIGINT,
    "POST /v1/events/collect": "the text/plain body must be a JSON batch of Segment calls",
    **{
        f"POST /v1/events/{path}": _SEGMENT_CALL
        for path in ("batch", "track", "identify", "page", "screen", "alias")
    },
    "PUT /v1/events/sources/{source_id}/plan/{type}/{event}": "the body must be a JSON Schema",
    "PUT /v1/messaging/templates/{name}/{channel}/{locale}": "a template must compile (Jinja2)",
    "POST /v1/messaging/templates/preview": (
        "name or content; the template must compile and render (defined variables, valid MJML,"
        " within the channel's length rules)"
    ),
    "POST /v1/messaging/messages": "the customer needs an address for the channel",
    "POST /v1/segments": _SEGMENT_RULE + "; a dynamic segment needs a rule, a static one none",
    "PATCH /v1/segments/{segment_id}": _SEGMENT_RULE + "; only a dynamic segment has a rule",
    "POST /v1/segments/preview": _SEGMENT_RULE,
    **{
        f"POST /v1/analytics/{path}": (
            "the period ends after its start, within 366 days; a filter's value fits its op;"
            " a property a filter or breakdown names is known (tracking plan or an event)"
            + ("; the drop-off step is before the last" if path == "funnels/dropoffs" else "")
        )
        for path in ("funnels", "funnels/dropoffs", "retention", "paths", "trends")
    },
}
_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]


def all_checks_config(
    *,
    headers: Mapping[str, str],
    path_values: Mapping[str, Any],
    max_examples: int,
    seed: int = 1,
    operation_headers: Mapping[str, Mapping[str, str]] | None = None,
    skip_phases: Iterable[str] = (),
) -> SchemathesisConfig:
    """Every phase (examples, coverage, fuzzing, stateful) and every check, derandomized.

    `path_values` pins path parameters to seeded rows, so requests reach the services. Only the
    operations of `SEMANTIC_422` may refuse schema-valid data with 422 (RFC 9110: understood,
    but the values cannot be processed), for the rule each names. `operation_headers` replace
    headers for the operations they name (the events write key instead of the bearer token);
    `skip_phases` leaves phases out (`coverage` and `stateful` multiply with large schemas).
    """
    semantic = {"checks": {"positive_data_acceptance": {"expected-statuses": [*_ACCEPTED, "422"]}}}
    per_op: dict[str, dict[str, Any]] = {label: dict(semantic) for label in SEMANTIC_422}
    for label, extra in (operation_headers or {}).items():
        per_op.setdefault(label, {})["headers"] = dict(extra)
    return SchemathesisConfig.from_dict(
        {
            "seed": seed,
            "headers": dict(headers),
            "workers": 1,
            "continue-on-failure": True,
            "parameters": {f"path.{name}": value for name, value in path_values.items()},
            "generation": {"max-examples": max_examples, "database": "none"},
            "phases": {name: {"enabled": False} for name in skip_phases},
            "checks": {"positive_data_acceptance": {"expected-statuses": _ACCEPTED}},
            "operations": [{"include-name": label, **cfg} for label, cfg in per_op.items()],
        }
    )


def run_all_checks(schema: Any) -> RunReport:
    """Run the engine on `schema` (loaded with `all_checks_config`) and collect its findings."""
    report = RunReport()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _collect(event.recorder, report)
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            report.errors.append(repr(event.exception))
    return report


def _collect(recorder: Any, report: RunReport) -> None:
    for node in recorder.cases.values():
        report.cases += 1
        report.operations.add(node.value.operation.label)
    for nodes in recorder.checks.values():
        for check in nodes:
            report.checks.add(check.name)
            if check.failure_info is not None:
                failure = check.failure_info.failure
                report.failed_checks += 1
                key = f"{recorder.label} [{check.name}] {failure.title}"
                report.failures.setdefault(key, failure.message)
