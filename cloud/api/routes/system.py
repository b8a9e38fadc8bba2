"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.deps import PoolDep

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    """Always ok while the process runs."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers")
def readyz(pool: PoolDep) -> dict[str, str]:
    """Ok when a pooled connection can run a query."""
    with pool.connection() as conn:
        conn.execute("SELECT 1")
    return {"status": "ok"}
