"""HTTP hardening: security headers on every response, and who may read the API docs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.api.deps import PrincipalDep
from cloud.core.settings import Settings

#: The dashboard loads only its own script, stylesheet and API; nobody may frame it.
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: API answers are data, never a page: nothing to load, nothing to frame.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
#: Swagger UI and ReDoc pull their script from a CDN; their own defaults apply there.
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeadersMiddleware:
    """Adds nosniff, frame and referrer policies, CSP, HSTS (behind TLS) and, on API data
    (`/v1/...`, personal data included), `Cache-Control: no-store`; headers a route set win."""

    def __init__(self, app: ASGIApp, *, hsts_max_age_s: int = 0) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age_s}; includeSubDomains" if hsts_max_age_s else None

    def headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        """The headers a response to `path` gets unless it set them itself."""
        out = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if path == "/dashboard" or path.startswith("/dashboard/"):
            out.append((b"content-security-policy", DASHBOARD_CSP.encode()))
        elif not path.startswith(DOCS_PATHS):
            out.append((b"content-security-policy", API_CSP.encode()))
        if path.startswith("/v1/"):
            out.append((b"cache-control", b"no-store"))
        if self.hsts:
            out.append((b"strict-transport-security", self.hsts.encode()))
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(str(scope.get("path", "")))

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                present = {bytes(k).lower() for k, _ in headers}
                headers.extend((k, v) for k, v in extra if k not in present)
            await send(message)

        await self.app(scope, receive, _send)


def docs_urls(settings: Settings) -> dict[str, Any]:
    """FastAPI's docs arguments: served publicly, or not at all (see `protected_openapi`)."""
    if settings.api_public_docs:
        return {"docs_url": "/docs", "redoc_url": "/redoc", "openapi_url": "/openapi.json"}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def protected_openapi(app: FastAPI) -> APIRouter:
    """GET /openapi.json for authenticated callers, when the docs are not public."""
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    def openapi(request: Request, _: PrincipalDep) -> JSONResponse:
        """The OpenAPI document of this API."""
        return JSONResponse(app.openapi())

    return router


def install_security_headers(app: FastAPI, settings: Settings) -> None:
    """Add the header middleware and, when the docs are private, the authenticated schema."""
    app.add_middleware(SecurityHeadersMiddleware, hsts_max_age_s=settings.api_hsts_max_age_s)
    if not settings.api_public_docs:
        app.include_router(protected_openapi(app))
