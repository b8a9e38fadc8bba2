"""Bulk import of customers from CSV (COPY into staging, per-row validation report) and export.

Columns (header required, any order, all optional but at least one identifier per row):
source_key, email, phone, loyalty_number, pos_customer_id, app_user_id, wechat_id, whatsapp_id,
device_id, first_name, last_name, birth_date, gender, language, city, postal_code, country.
A bad row is rejected with its line number, field and message (and kept in crm_import_rejects);
it writes nothing else. Duplicate rows (same source_key, or the same identifiers) are rejected.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.identity.normalize import IdentifierKind
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.identity.service import PendingRecord, ingest_many, normalize_identifiers
from cloud.crm.identity.survivorship import ProfileAttributes, validate_attributes
from cloud.db.repositories import crm_import as repo

Conn = psycopg.Connection[Any]
ID_COLUMNS = tuple(k.value for k in IdentifierKind)
ATTR_COLUMNS = tuple(ProfileAttributes.model_fields)
COLUMNS = ("source_key", *ID_COLUMNS, *ATTR_COLUMNS)


@dataclass
class ImportReport:
    """What an import did, row by row."""

    import_id: str
    rows: int = 0
    imported: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def _header(data: bytes) -> tuple[list[str], bytes]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CrmInvalidInputError(f"the CSV is not UTF-8 text: {exc}") from exc
    first, _, rest = text.partition("\n")
    try:
        header = [h.strip().lower() for h in next(csv.reader([first]))]
    except csv.Error as exc:
        raise CrmInvalidInputError(f"the CSV header cannot be parsed: {exc}") from exc
    unknown = [h for h in header if h not in COLUMNS]
    if unknown or not header or len(set(header)) != len(header):
        raise CrmInvalidInputError(
            f"bad CSV header: unknown or repeated columns {unknown or header}; known: {COLUMNS}"
        )
    if not set(header) & set(ID_COLUMNS):
        raise CrmInvalidInputError(f"the CSV needs at least one identifier column of {ID_COLUMNS}")
    return header, rest.encode()


def _check_row(
    values: dict[str, str], rules: IdentityRules
) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    ids = [(k, values[k]) for k in ID_COLUMNS if values.get(k)]
    idents = normalize_identifiers(ids, rules)
    attrs = validate_attributes({k: values[k] for k in ATTR_COLUMNS if values.get(k)})
    return idents, attrs


def _validate_rows(
    header: list[str],
    rows: list[tuple[Any, ...]],
    source: str,
    rules: IdentityRules,
    report: ImportReport,
) -> tuple[list[PendingRecord], list[tuple[int, str, Any]]]:
    """Valid rows as records to store, and rejected rows with their errors."""
    seen: dict[str, int] = {}
    valid: list[PendingRecord] = []
    rejects: list[tuple[int, str, Any]] = []
    now = datetime.now(UTC)
    for line, *cells in rows:
        line_no = int(line) + 1  # the header is line 1
        values = {h: (c or "").strip() for h, c in zip(header, cells, strict=True)}
        try:
            idents, attrs = _check_row(values, rules)
            key = values.get("source_key") or "|".join(sorted(f"{k}={v}" for k, v, _ in idents))
            if key in seen:
                raise CrmInvalidInputError(f"duplicate of line {seen[key]}")
            seen[key] = line_no
        except CrmInvalidInputError as exc:
            errs = exc.errors or [{"field": None, "message": exc.detail}]
            report.errors += [{"line": line_no, **e} for e in errs]
            rejects.append((line_no, ",".join(values.values()), errs))
            continue
        valid.append(
            PendingRecord(source, f"{source}:{key}"[:500], rules.trust(source), attrs, now, idents)
        )
    return valid, rejects


def import_customers(
    conn: Conn,
    data: bytes,
    *,
    source: str = "import",
    rules: IdentityRules | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 1000,
) -> ImportReport:
    """Import a CSV file in one transaction; valid rows are resolved into profiles together,
    `batch` rows per resolution."""
    rules = rules or IdentityRules()
    header, body = _header(data)
    report = ImportReport(import_id=uuid.uuid4().hex[:12])
    with conn.transaction():
        try:
            rows = repo.copy_into_staging(conn, header, body)
        except psycopg.errors.DataError as exc:  # ragged rows, bad quoting
            raise CrmInvalidInputError(f"the CSV cannot be parsed: {exc}") from exc
        report.rows = len(rows)
        valid, rejects = _validate_rows(header, rows, source, rules, report)
        for start in range(0, len(valid), batch):
            ingest_many(conn, valid[start : start + batch], rules=rules)
            report.imported += len(valid[start : start + batch])
            if progress is not None:
                progress(report.imported, len(valid))
        report.rejected = len(rejects)
        repo.insert_rejects(conn, report.import_id, rejects)
    return report


def export_customers(conn: Conn) -> bytes:
    """All live profiles as CSV (COPY TO STDOUT)."""
    buf = io.BytesIO()
    for chunk in repo.export_csv(conn):
        buf.write(chunk)
    return buf.getvalue()
