"""Bulk backfill of events from JSONL or CSV: each line a Segment-spec call, stored through the
same COPY path as live calls in chunks (a commit per chunk), with progress; a re-import is a
no-op (a line without messageId gets one derived from its content)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from pydantic import ValidationError

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.events import clock, service
from cloud.crm.events import repository as repo
from cloud.crm.events.repository import Source
from cloud.crm.events.schemas import CallIn
from cloud.crm.identity.rules import IdentityRules

Conn = psycopg.Connection[Any]
CHUNK = 5_000
#: CSV columns that are call fields; every other column is a property (text).
CSV_FIELDS = {
    "type", "event", "name", "messageId", "message_id", "anonymousId", "anonymous_id",
    "userId", "user_id", "previousId", "previous_id", "timestamp", "properties", "traits",
}  # fmt: skip


@dataclass
class ImportReport:
    """What an import did; `errors` holds (line number, message) of the lines it refused."""

    lines: int = 0
    stored: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def jsonl_records(text: Iterable[str]) -> Iterator[tuple[int, str, Any]]:
    """(line number, raw line, parsed JSON or an exception) of each non-blank line."""
    for n, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            yield n, line, json.loads(line)
        except json.JSONDecodeError as exc:
            yield n, line, exc


def csv_records(text: Iterable[str]) -> Iterator[tuple[int, str, Any]]:
    """(line number, raw row, a call dict) of each CSV row; unknown columns become properties."""
    reader = csv.DictReader(text)
    for row in reader:
        n = reader.line_num
        raw = json.dumps(row, sort_keys=True)
        call: dict[str, Any] = {}
        props: dict[str, Any] = {}
        try:
            for key, value in row.items():
                if key is None or value in (None, ""):
                    continue
                if key in ("properties", "traits"):
                    call[key] = json.loads(value)
                elif key in CSV_FIELDS:
                    call[key] = value
                else:
                    props[key] = value
        except json.JSONDecodeError as exc:
            yield n, raw, exc
            continue
        if props:
            call["properties"] = {**props, **call.get("properties", {})}
        yield n, raw, call


def import_events(
    conn: Conn,
    records: Iterable[tuple[int, str, Any]],
    *,
    source: Source,
    rules: IdentityRules | None = None,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Store the calls of `records` (history: any past time; no consent or plan check, the
    operator vouches for the file); each chunk is committed, so progress survives a failure."""
    rules = rules or IdentityRules()
    report = ImportReport()
    chunk: list[service.PendingCall] = []
    now = datetime.now(UTC)
    for n, raw, data in records:
        report.lines += 1
        pending = _pending(n, raw, data, now)
        if isinstance(pending, str):
            report.errors.append((n, pending))
            continue
        chunk.append(pending)
        if len(chunk) >= CHUNK:
            _flush(conn, source, chunk, rules, report, progress)
    _flush(conn, source, chunk, rules, report, progress)
    return report


def _pending(n: int, raw: str, data: Any, now: datetime) -> service.PendingCall | str:
    if isinstance(data, Exception):
        return f"not JSON: {data}"
    if not isinstance(data, dict):
        return "a call must be a JSON object"
    try:
        call = CallIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    when = call.timestamp or now
    if when > now + clock.MAX_FUTURE:
        return f"timestamp {when.isoformat()} is in the future"
    mid = call.message_id or "imp-" + hashlib.sha256(raw.strip().encode()).hexdigest()[:32]
    return service.PendingCall(n, call, mid, when)


def _flush(
    conn: Conn,
    source: Source,
    chunk: list[service.PendingCall],
    rules: IdentityRules,
    report: ImportReport,
    progress: Callable[[ImportReport], None] | None,
) -> None:
    if not chunk:
        return
    unique = list({p.message_id: p for p in reversed(chunk)}.values())[::-1]
    try:
        stored, violations = service.store(conn, source, unique, datetime.now(UTC), rules)
        repo.count_violations(conn, source.id, violations, datetime.now(UTC))
        conn.commit()
    except CrmInvalidInputError as exc:
        conn.rollback()
        report.errors.append((chunk[0].index, f"chunk from here not stored: {exc.detail}"))
        chunk.clear()
        return
    report.stored += stored
    report.duplicates += len(chunk) - stored
    chunk.clear()
    if progress is not None:
        progress(report)


def records_of(data: bytes, fmt: str) -> Iterator[tuple[int, str, Any]]:
    """The records of a file's bytes in `fmt` ("jsonl" or "csv")."""
    text = io.StringIO(data.decode("utf-8-sig"), newline="")
    return jsonl_records(text) if fmt == "jsonl" else csv_records(text)
