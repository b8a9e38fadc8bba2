"""The live dashboard page for store managers (static HTML, CSS and JS from cloud/web)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from cloud.core.errors import NotFoundError

router = APIRouter(tags=["dashboard"], include_in_schema=False)
_TYPES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


def _read(name: str) -> bytes:
    return resources.files("cloud.web").joinpath(name).read_bytes()


@router.get("/dashboard")
def dashboard() -> Response:
    """The dashboard page; the store and token come from the URL fragment or a form."""
    return Response(_read("dashboard.html"), media_type="text/html; charset=utf-8")


@router.get("/dashboard/{name}")
def dashboard_asset(name: str) -> Response:
    """The page's script and stylesheet."""
    if name not in _TYPES:
        raise NotFoundError(f"no dashboard file '{name}'")
    return Response(_read(name), media_type=_TYPES[name], headers={"Cache-Control": "no-cache"})
