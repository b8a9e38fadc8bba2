"""Bulk customer import (CSV body) and export (CSV download)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from cloud.api.deps import ConnDep, MarketerDep, PoolDep
from cloud.api.routes.customers_deps import RulesDep
from cloud.api.schemas.crm import ImportReport
from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.importer import COLUMNS, export_customers, import_customers

router = APIRouter(prefix="/v1/customers", tags=["customers"])
MAX_IMPORT_BYTES = 50 * 1024 * 1024


@router.post(
    "/import",
    summary="Import customers from CSV (per-row validation report)",
    description=f"Send the CSV as the request body (Content-Type: text/csv). Columns: {COLUMNS}.",
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def import_csv(
    request: Request, pool: PoolDep, _: MarketerDep, rules: RulesDep
) -> ImportReport:
    """Valid rows are stored and resolved; each bad row is reported with line, field, message."""
    data = await request.body()
    if not data or len(data) > MAX_IMPORT_BYTES:
        raise CrmInvalidInputError(f"send 1 byte to {MAX_IMPORT_BYTES} bytes of CSV")

    def work() -> ImportReport:
        with pool.connection() as conn:
            return ImportReport(**asdict(import_customers(conn, data, rules=rules)))

    return await run_in_threadpool(work)


@router.get("/export", summary="Export live customers as CSV")
def export_csv(conn: ConnDep, _: MarketerDep) -> Response:
    """Golden attributes and main identifiers of every live profile."""
    return Response(export_customers(conn), media_type="text/csv")
