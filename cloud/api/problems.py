"""RFC 9457 problem-details responses for every error the API can answer with."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from cloud.core.errors import CloudError, ConflictError, InvalidInputError
from cloud.core.logging import request_id_var

log = logging.getLogger(__name__)
PROBLEM_BASE = "https://mallpulse.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build a problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


#: The methods a path may serve; each is tried against the routes to build an Allow header.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app fully serves at the request's path."""
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def _json_safe(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        out.append({"field": loc, "message": str(err.get("msg", "")), "type": err.get("type")})
    return out


def database_error(exc: psycopg.Error) -> CloudError | None:
    """The client error a database error caused by bad input stands for; None for a server fault.

    Checks the database enforces (ranges, NUL bytes, CHECK, NOT NULL, foreign and unique keys)
    reject input the schemas let through; those are the caller's to fix, never a 500.
    """
    diag = getattr(exc, "diag", None)
    reason = (diag.message_primary if diag is not None else None) or str(exc).splitlines()[0]
    if isinstance(exc, psycopg.errors.UniqueViolation | psycopg.errors.ExclusionViolation):
        return ConflictError(f"conflicts with an existing record: {reason}")
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        detail = (diag.message_detail if diag is not None else None) or ""
        if "still referenced" in detail:
            return ConflictError(f"the record is still referenced: {reason}")
        return InvalidInputError(f"refers to a record that does not exist: {reason}")
    if isinstance(exc, psycopg.errors.CheckViolation | psycopg.errors.NotNullViolation):
        return InvalidInputError(f"a value breaks a rule of the stored data: {reason}")
    if isinstance(exc, psycopg.DataError):
        return InvalidInputError(f"a value cannot be stored as given: {reason}")
    return None


def install_problem_handlers(app: FastAPI) -> None:
    """Register exception handlers so every error is a problem body, never a bare 500 page."""

    @app.exception_handler(CloudError)
    async def _cloud_error(request: Request, exc: CloudError) -> JSONResponse:
        if exc.status >= 500:
            log.error("server error: %s", exc.detail)
        # the scheme the route authenticates with: Bearer, unless the error names its own
        # (the events collection routes take write keys as HTTP Basic, as Segment does)
        challenge = str(getattr(exc, "challenge", "Bearer"))
        headers = {"WWW-Authenticate": challenge} if exc.status == 401 else None
        return problem(
            request,
            exc.status,
            exc.title,
            exc.detail,
            slug=exc.slug,
            errors=exc.errors,
            headers=headers,
        )

    @app.exception_handler(psycopg.Error)
    async def _database(request: Request, exc: psycopg.Error) -> JSONResponse:
        error = database_error(exc)
        if error is None:
            return await _unexpected(request, exc)
        log.warning("database rejected input: %s", exc.__class__.__name__, exc_info=exc)
        return await _cloud_error(request, error)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(
            request,
            422,
            "Invalid request",
            "the request failed validation; see `errors`",
            slug="validation",
            errors=_json_safe(list(exc.errors())),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path only; a
            # path served by several routes (GET and POST /v1/stores) allows all of theirs.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem(
            request,
            exc.status_code,
            title,
            str(exc.detail),
            slug=f"http-{exc.status_code}",
            headers=headers or None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(
            request,
            500,
            "Internal error",
            "an unexpected error occurred; it has been logged with the request id",
            slug="internal-error",
        )


#: The JSON schema of every error body (RFC 9457 problem details plus our extensions).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` lists the fields a validation rejected.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "URI naming the kind of problem."},
        "title": {"type": "string", "description": "Short summary of the kind of problem."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong with this request."},
        "instance": {"type": "string", "description": "The request path."},
        "request_id": {"type": "string", "description": "Also in the X-Request-ID header."},
        "errors": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": True},
            "description": "One entry per rejected field or row (`field`, `message`, ...).",
        },
    },
    "additionalProperties": True,
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {
    400: "Malformed request (unreadable body or headers).",
    401: "Missing, invalid, expired or revoked credentials.",
    403: "The caller's role or stores do not allow this.",
    404: "The resource (or a record the request names) does not exist.",
    405: "Method not allowed; the Allow header lists those this path serves.",
    409: "Conflicts with the current state (duplicate, reused idempotency key, short balance).",
    413: "The request body is larger than the limit.",
    415: "The request body has a media type this operation does not read.",
    422: "The request is well-formed but its values are invalid; `errors` names the fields.",
    429: "A rate limit was reached; Retry-After says when to try again.",
    503: "A dependency does not answer; try again later.",
}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object of one error status: a problem+json body."""
    return {
        "description": description or _DESCRIPTIONS.get(status, "Error."),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: these error statuses, each with a problem body.

    The app adds the statuses every operation shares (see `document_problems`), so a route
    names only its own, e.g. `responses=problem_responses(404, 503)`.
    """
    return {status: problem_response(status) for status in statuses}


@dataclass(frozen=True)
class ProblemDefaults:
    """Error statuses the app documents on operations by what they have, not route by route."""

    #: Every operation: a bad Content-Length is refused before routing.
    every: tuple[int, ...] = (400,)
    #: Operations with a security requirement: no or bad credentials, wrong role or store,
    #: too many failed authentications.
    secured: tuple[int, ...] = (401, 403, 429)
    #: Operations with any parameter or a body: request validation.
    with_input: tuple[int, ...] = (422,)
    #: Operations with a request body: the body limit.
    with_body: tuple[int, ...] = (413,)
    #: Operations with path parameters: the resource they name does not exist.
    with_path: tuple[int, ...] = (404,)
    #: POST, PUT, PATCH, DELETE: a write may conflict with a stored row or a reused key.
    writes: tuple[int, ...] = (409,)


_WRITES = frozenset({"post", "put", "patch", "delete"})
#: `openapi_extra` of a POST that only reads (a query sent as a body): it conflicts with nothing,
#: so the shared 409 is not declared for it.
READ_ONLY: dict[str, Any] = {"x-read-only": True}
_METHODS = frozenset({"get", "head", "options", "trace", *_WRITES})


def _statuses_for(method: str, operation: dict[str, Any], rules: ProblemDefaults) -> set[int]:
    params = operation.get("parameters", [])
    body = "requestBody" in operation
    out = set(rules.every)
    if operation.get("security"):
        out.update(rules.secured)
    if params or body:
        out.update(rules.with_input)
    if body:
        out.update(rules.with_body)
    if any(p.get("in") == "path" for p in params):
        out.update(rules.with_path)
    if method in _WRITES and not operation.get("x-read-only"):
        out.update(rules.writes)
    return out


def add_problem_responses(schema: dict[str, Any], rules: ProblemDefaults) -> dict[str, Any]:
    """Declare the shared error statuses on every operation of an OpenAPI document, and make
    every error response (FastAPI's default 422 included) a problem+json body."""
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status in _statuses_for(method, operation, rules):
                responses.setdefault(str(status), problem_response(status))
            for code, response in responses.items():
                if code[:1] in ("4", "5"):
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)  # FastAPI's 422 body; ours is a problem
    schemas["Problem"] = PROBLEM_SCHEMA
    return schema


def document_problems(app: FastAPI, rules: ProblemDefaults | None = None) -> None:
    """Make the app's OpenAPI document declare its errors as they are answered (see
    `ProblemDefaults`; routes add their own with `problem_responses`)."""
    generate = app.openapi
    chosen = rules or ProblemDefaults()

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_problem_responses(generate(), chosen)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
