"""RFC 9457 problem-details responses for every error the API can answer with."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
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
        return problem(
            request,
            exc.status_code,
            title,
            str(exc.detail),
            slug=f"http-{exc.status_code}",
            headers=dict(exc.headers) if exc.headers else None,
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
