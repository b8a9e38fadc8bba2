"""SQL for bulk customer import (COPY into a staging table) and export (COPY out)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def copy_into_staging(conn: Conn, columns: Sequence[str], data: bytes) -> list[tuple[Any, ...]]:
    """COPY CSV rows (no header) into a temporary table; returns (line_no, *columns) rows."""
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
            copy.write(data)
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


_EXPORT = """
COPY (
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
    FROM crm_profiles p WHERE p.merged_into IS NULL ORDER BY p.id
) TO STDOUT WITH (FORMAT csv, HEADER true)
"""


def export_csv(conn: Conn) -> Iterator[bytes]:
    """Live profiles as CSV chunks (COPY TO STDOUT)."""
    with conn.cursor() as cur, cur.copy(_EXPORT) as copy:
        for chunk in copy:
            yield bytes(chunk)
