"""SQL for bulk customer import (COPY into a staging table) and export (COPY out)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def copy_into_staging(
    conn: Conn, columns: Sequence[str], chunks: Iterable[bytes]
) -> list[tuple[Any, ...]]:
    """COPY CSV rows (no header), chunk by chunk as they come, into a temporary table; returns
    (line_no, *columns) rows."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    defs = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE crm_import_staging (line_no bigint GENERATED ALWAYS AS IDENTITY,"
            " {}) ON COMMIT DROP"
        ).format(defs)
    )
    with conn.cursor() as cur:
        copy_sql = sql.SQL("COPY crm_import_staging ({}) FROM STDIN WITH (FORMAT csv)")
        with cur.copy(copy_sql.format(cols)) as copy:
            for chunk in chunks:
                copy.write(chunk)
        rows = cur.execute(
            sql.SQL("SELECT line_no, {} FROM crm_import_staging ORDER BY line_no").format(cols)
        ).fetchall()
    return rows


def insert_rejects(conn: Conn, import_id: str, rejects: Sequence[tuple[int, str, Any]]) -> None:
    """Keep rejected rows with their errors."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm_import_rejects (import_id, line_no, raw, errors)"
            " VALUES (%s, %s, %s, %s)",
            [(import_id, line, raw, Jsonb(errs)) for line, raw, errs in rejects],
        )


EXPORT_COLUMNS = (
    "profile_id",
    "lifecycle_stage",
    "first_name",
    "last_name",
    "birth_date",
    "country",
    "city",
    "emails",
    "phones",
    "loyalty_numbers",
    "created_at",
    "updated_at",
)

_EXPORT = """
SELECT p.id AS profile_id, p.lifecycle_stage,
    p.attributes->>'first_name' AS first_name, p.attributes->>'last_name' AS last_name,
    p.attributes->>'birth_date' AS birth_date, p.attributes->>'country' AS country,
    p.attributes->>'city' AS city,
    (SELECT string_agg(DISTINCT i.value, ';') FROM crm_identifiers i
        JOIN crm_records r ON r.id = i.record_id
        WHERE r.profile_id = p.id AND i.kind = 'email') AS emails,
    (SELECT string_agg(DISTINCT i.value, ';') FROM crm_identifiers i
        JOIN crm_records r ON r.id = i.record_id
        WHERE r.profile_id = p.id AND i.kind = 'phone') AS phones,
    (SELECT string_agg(DISTINCT i.value, ';') FROM crm_identifiers i
        JOIN crm_records r ON r.id = i.record_id
        WHERE r.profile_id = p.id AND i.kind = 'loyalty_number') AS loyalty_numbers,
    p.created_at, p.updated_at
FROM crm_profiles p
WHERE p.merged_into IS NULL AND (%(stage)s::text IS NULL OR p.lifecycle_stage = %(stage)s)
ORDER BY p.id
"""


def export_rows(
    conn: Conn, *, lifecycle_stage: str | None = None, batch: int = 2000
) -> Iterator[tuple[Any, ...]]:
    """Live profiles in EXPORT_COLUMNS order, read through a server-side cursor (in the
    caller's transaction)."""
    with conn.cursor(name="crm_export") as cur:
        cur.itersize = batch
        cur.execute(_EXPORT, {"stage": lifecycle_stage})
        yield from cur
