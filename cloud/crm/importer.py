"""Bulk import of customers from CSV (COPY into staging, per-row validation report) and export.

Columns (header required, any order, all optional but at least one identifier per row):
source_key, email, phone, loyalty_number, pos_customer_id, app_user_id, wechat_id, whatsapp_id,
device_id, first_name, last_name, birth_date, gender, language, city, postal_code, country.
A bad row is rejected with its line number, field and message (and kept in crm_import_rejects);
it writes nothing else. Duplicate rows (same source_key, or the same identifiers) are rejected.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.identity.normalize import IdentifierKind
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.identity.service import PendingRecord, ingest_many, normalize_identifiers
from cloud.crm.identity.survivorship import ProfileAttributes, validate_attributes
from cloud.db.repositories import audit as audit_repo
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


MAX_HEADER_BYTES = 65_536
_BOM = b"\xef\xbb\xbf"


def _split_header(chunks: Iterator[bytes]) -> tuple[bytes, bytes]:
    """Read chunks up to the first newline: (header line, what followed it in the last chunk)."""
    head = b""
    for chunk in chunks:
        head += chunk
        line, nl, rest = head.partition(b"\n")
        if nl:
            return line, rest
        if len(head) > MAX_HEADER_BYTES:
            break
    if len(head) > MAX_HEADER_BYTES:
        raise CrmInvalidInputError(f"the CSV header line is longer than {MAX_HEADER_BYTES} bytes")
    return head, b""


def _header(line: bytes) -> list[str]:
    try:
        first = line.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CrmInvalidInputError(f"the CSV is not UTF-8 text: {exc}") from exc
    try:
        header = [h.strip().lower() for h in next(csv.reader([first]))]
    except (csv.Error, StopIteration) as exc:
        raise CrmInvalidInputError(f"the CSV header cannot be parsed: {exc}") from exc
    unknown = [h for h in header if h not in COLUMNS]
    if unknown or not header or len(set(header)) != len(header):
        raise CrmInvalidInputError(
            f"bad CSV header: unknown or repeated columns {unknown or header}; known: {COLUMNS}"
        )
    if not set(header) & set(ID_COLUMNS):
        raise CrmInvalidInputError(f"the CSV needs at least one identifier column of {ID_COLUMNS}")
    return header


def _utf8_checked(first: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The body's chunks as they stream, each checked to continue valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for chunk in itertools.chain([first], chunks):
            decoder.decode(chunk)
            yield chunk
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise CrmInvalidInputError(f"the CSV is not UTF-8 text: {exc}") from exc


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
    data: bytes | Iterable[bytes],
    *,
    source: str = "import",
    rules: IdentityRules | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 1000,
) -> ImportReport:
    """Import a CSV file (bytes, or chunks as they stream in) in one transaction; valid rows are
    resolved into profiles together, `batch` rows per resolution."""
    rules = rules or IdentityRules()
    chunks = iter([data] if isinstance(data, bytes) else data)
    line, rest = _split_header(chunks)
    header = _header(line)
    report = ImportReport(import_id=uuid.uuid4().hex[:12])
    with conn.transaction():
        try:
            rows = repo.copy_into_staging(conn, header, _utf8_checked(rest, chunks))
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


#: Cells starting with these open a formula in spreadsheet programs (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: A list of E.164 numbers is data, not a formula, even though it starts with "+".
_PHONE_LIST = re.compile(r"\+\d{1,15}(;\+\d{1,15})*")
PII_EXPORT_ACTION = "crm.customers.export"


def neutralise(cell: str) -> str:
    """A cell a spreadsheet shows as text: a leading formula character gets a `'` before it."""
    if cell.startswith(FORMULA_PREFIXES) and not _PHONE_LIST.fullmatch(cell):
        return "'" + cell
    return cell


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return neutralise(str(value))


@dataclass(frozen=True)
class Export:
    """A CSV export and the audit row it left."""

    data: bytes
    rows: int
    audit_id: int | None = None


def _export(conn: Conn, lifecycle_stage: str | None) -> Export:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(repo.EXPORT_COLUMNS)
    count = 0
    for row in repo.export_rows(conn, lifecycle_stage=lifecycle_stage):
        writer.writerow([_cell(v) for v in row])
        count += 1
    return Export(buf.getvalue().encode("utf-8"), count)


def export_customers(conn: Conn, *, lifecycle_stage: str | None = None) -> bytes:
    """Live profiles as CSV, every cell safe to open in a spreadsheet (no formulas)."""
    with conn.transaction():
        return _export(conn, lifecycle_stage).data


def export_customers_audited(
    conn: Conn, *, actor: str, role: str, lifecycle_stage: str | None = None
) -> Export:
    """Export live profiles and record who exported how many rows with which filter, in one
    transaction: an export that is not audited is not handed out."""
    with conn.transaction():
        out = _export(conn, lifecycle_stage)
        audit_id, _ = audit_repo.record(
            conn,
            actor=actor,
            role=role,
            action=PII_EXPORT_ACTION,
            row_count=out.rows,
            detail={"filter": {"lifecycle_stage": lifecycle_stage}},
        )
    return Export(out.data, out.rows, audit_id)
