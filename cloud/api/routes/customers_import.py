"""Bulk customer import (CSV body, streamed) and export (CSV download, audited)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import IO, Annotated

import psycopg
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from cloud.api.deps import ConnDep, MarketerDep, PoolDep, committing, not_saved
from cloud.api.routes.customers_deps import PiiExportDep, RulesDep
from cloud.api.schemas.crm import ImportReport
from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.importer import COLUMNS, export_customers_audited, import_customers

router = APIRouter(prefix="/v1/customers", tags=["customers"])
#: The import route; the body-limit middleware gives it its own, larger limit.
IMPORT_PATH = "/v1/customers/import"
#: Bodies up to this size stay in memory while they arrive; larger ones spill to a temp file.
SPOOL_MEMORY_BYTES = 1024 * 1024
CHUNK_BYTES = 256 * 1024


async def _spool(request: Request) -> tuple[IO[bytes], int]:
    """Receive the body chunk by chunk (the middleware counts it against the import limit)."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
    size = 0
    try:
        async for chunk in request.stream():
            spool.write(chunk)
            size += len(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, size


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    while chunk := spool.read(CHUNK_BYTES):
        yield chunk


@router.post(
    "/import",
    summary="Import customers from CSV (per-row validation report)",
    description=f"Send the CSV as the request body (Content-Type: text/csv). Columns: {COLUMNS}."
    " The body limit is MALLPULSE_API_MAX_IMPORT_BYTES (413 above).",
    openapi_extra={
        "requestBody": {
            "content": {"text/csv": {"schema": {"type": "string", "minLength": 1}}},
            "required": True,
        }
    },
)
async def import_csv(
    request: Request, pool: PoolDep, _: MarketerDep, rules: RulesDep
) -> ImportReport:
    """Valid rows are stored and resolved; each bad row is reported with line, field, message."""
    spool, size = await _spool(request)

    def work() -> ImportReport:
        with spool, committing(pool) as conn:
            try:  # the import is one transaction that commits inside: any refusal saved nothing
                report = import_customers(conn, _chunks(spool), rules=rules)
            except psycopg.Error as exc:
                raise not_saved(exc) from exc
            return ImportReport(**asdict(report))

    if size == 0:
        spool.close()
        raise CrmInvalidInputError("send the CSV (a header line and rows) as the request body")
    return await run_in_threadpool(work)


@router.get(
    "/export",
    summary="Export live customers as CSV (needs the pii_export permission)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV."}
    },
)
def export_csv(
    conn: ConnDep,
    who: PiiExportDep,
    lifecycle_stage: Annotated[
        str | None, Query(max_length=64, description="Only customers in this lifecycle stage.")
    ] = None,
) -> Response:
    """Golden attributes and contacts of live profiles; every export is audited (who, when, how
    many rows, which filter) and no cell can open as a spreadsheet formula."""
    out = export_customers_audited(
        conn, actor=who.subject, role=who.role.value, lifecycle_stage=lifecycle_stage
    )
    filename = f"customers-{datetime.now(UTC):%Y-%m-%d}.csv"
    return Response(
        out.data,
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Export-Rows": str(out.rows),
            "Cache-Control": "no-store",
        },
    )
