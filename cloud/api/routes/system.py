"""Liveness, readiness (the database, and Redis where configured) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from cloud.api.deps import PoolDep, SettingsDep
from cloud.core import readiness
from cloud.core.metrics import exposition
from cloud.core.settings import Settings

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    """Always ok while the process runs (no dependency is asked: a database outage must not
    get every API pod restarted)."""
    return {"status": "ok"}


def api_checks(settings: Settings, pool: ConnectionPool) -> dict[str, readiness.Check]:
    """PostgreSQL always; Redis when MALLPULSE_REDIS_URL was given."""
    checks = {"postgres": readiness.postgres(pool)}
    if "redis_url" in settings.model_fields_set:
        checks["redis"] = readiness.redis(settings.redis_url)
    return checks


@router.get(
    "/readyz",
    summary="Readiness: the dependencies answer",
    responses={503: {"description": "A dependency does not answer (problem body names it)."}},
)
def readyz(settings: SettingsDep, pool: PoolDep) -> dict[str, object]:
    """Ok when PostgreSQL (and Redis where configured) answer; 503 naming the failures."""
    return {"status": "ok", "checks": readiness.require_ready(api_checks(settings, pool))}


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics() -> Response:
    """Request, hub and process metrics in the Prometheus text format."""
    body, content_type = await run_in_threadpool(exposition)
    return Response(body, media_type=content_type)
