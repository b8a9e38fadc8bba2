"""SQL for profiles, source records, identifiers, blocks and merges."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]
Key = tuple[str, str]

_IDENTITY_LOCK = 0x63726D31  # 'crm1': serialises identity resolution (see docs/crm.md)


def lock_identity(conn: Conn) -> None:
    """Take the transaction-scoped identity-resolution lock."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_IDENTITY_LOCK,))


def find_record(conn: Conn, source: str, source_key: str) -> tuple[int, int] | None:
    """(record id, profile id) of the record with this source key, or None."""
    row = conn.execute(
        "SELECT id, profile_id FROM crm_records WHERE source = %s AND source_key = %s",
        (source, source_key),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def records_with_identifiers(conn: Conn, keys: Iterable[Key]) -> dict[int, int]:
    """record id -> profile id of every record carrying one of `keys`."""
    kinds, values = _split(keys)
    rows = conn.execute(
        "SELECT DISTINCT r.id, r.profile_id FROM crm_identifiers i"
        " JOIN crm_records r ON r.id = i.record_id"
        " WHERE (i.kind, i.value) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        (kinds, values),
    ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def identifiers_of_records(
    conn: Conn, record_ids: Sequence[int], *, linking_only: bool = False
) -> dict[int, list[Key]]:
    """record id -> its (kind, value) identifiers; `linking_only` leaves out those an unmerge
    unlinked from that record."""
    out: dict[int, list[Key]] = {rid: [] for rid in record_ids}
    for rid, kind, value in conn.execute(
        "SELECT record_id, kind, value FROM crm_identifiers WHERE record_id = ANY(%s)"
        " AND (NOT %s OR unlinked_by_merge IS NULL)",
        (list(record_ids), linking_only),
    ):
        out[int(rid)].append((kind, value))
    return out


def unlink_identifiers(conn: Conn, edges: Iterable[tuple[int, str, str]], *, merge_id: int) -> None:
    """Stop (record id, kind, value) identifiers from linking their record (undo of a merge)."""
    rows = list(edges)
    conn.execute(
        "UPDATE crm_identifiers SET unlinked_by_merge = %s"
        " WHERE (record_id, kind, value) IN"
        " (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[]))",
        (merge_id, [r for r, _, _ in rows], [k for _, k, _ in rows], [v for _, _, v in rows]),
    )


def blocked_identifiers(conn: Conn, keys: Iterable[Key]) -> set[Key]:
    """The subset of `keys` that is blocked from linking."""
    kinds, values = _split(keys)
    rows = conn.execute(
        "SELECT kind, value FROM crm_identifier_blocks"
        " WHERE (kind, value) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        (kinds, values),
    ).fetchall()
    return {(r[0], r[1]) for r in rows}


def block_identifiers(conn: Conn, keys: Iterable[Key], reason: str) -> None:
    """Stop `keys` from linking records."""
    kinds, values = _split(keys)
    conn.execute(
        "INSERT INTO crm_identifier_blocks (kind, value, reason)"
        " SELECT k, v, %s FROM unnest(%s::text[], %s::text[]) AS t(k, v)"
        " ON CONFLICT DO NOTHING",
        (reason, kinds, values),
    )


def create_profile(conn: Conn) -> int:
    """A new, empty, live profile."""
    row = conn.execute("INSERT INTO crm_profiles DEFAULT VALUES RETURNING id").fetchone()
    assert row is not None
    return int(row[0])


def insert_record(
    conn: Conn,
    *,
    profile_id: int,
    source: str,
    source_key: str | None,
    trust: int,
    attributes: dict[str, Any],
    observed_at: datetime,
) -> int:
    """Insert a source record; returns its id."""
    row = conn.execute(
        "INSERT INTO crm_records (profile_id, source, source_key, trust, attributes, observed_at)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (profile_id, source, source_key, trust, Jsonb(attributes), observed_at),
    ).fetchone()
    assert row is not None
    return int(row[0])


def update_record(conn: Conn, record_id: int, attributes: dict[str, Any], when: datetime) -> None:
    """Overlay non-empty attributes on a record and advance its observation time."""
    conn.execute(
        "UPDATE crm_records SET attributes = attributes || %s,"
        " observed_at = greatest(observed_at, %s) WHERE id = %s",
        (Jsonb(attributes), when, record_id),
    )


def add_identifiers(conn: Conn, record_id: int, idents: Sequence[tuple[str, str, str]]) -> None:
    """Attach (kind, value, raw) identifiers to a record (duplicates ignored)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm_identifiers (record_id, kind, value, raw_value)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(record_id, k, v, raw) for k, v, raw in idents],
        )


def move_records(conn: Conn, record_ids: Sequence[int], profile_id: int) -> None:
    """Point records, and the transactions and touchpoints made through them, at a profile."""
    ids = list(record_ids)
    conn.execute("UPDATE crm_records SET profile_id = %s WHERE id = ANY(%s)", (profile_id, ids))
    conn.execute(
        "UPDATE crm_transactions SET profile_id = %s WHERE record_id = ANY(%s)", (profile_id, ids)
    )
    conn.execute(
        "UPDATE crm_touchpoints SET profile_id = %s WHERE record_id = ANY(%s)", (profile_id, ids)
    )


def record_ids_of_profile(conn: Conn, profile_id: int) -> list[int]:
    """Ids of the records a profile holds."""
    rows = conn.execute(
        "SELECT id FROM crm_records WHERE profile_id = %s ORDER BY id", (profile_id,)
    ).fetchall()
    return [int(r[0]) for r in rows]


def mark_merged(conn: Conn, absorbed_id: int, survivor_id: int) -> None:
    """Redirect a profile (and those already redirected to it) to the survivor."""
    conn.execute(
        "UPDATE crm_profiles SET merged_into = %s, updated_at = now()"
        " WHERE id = %s OR merged_into = %s",
        (survivor_id, absorbed_id, absorbed_id),
    )


def revive_profile(conn: Conn, profile_id: int) -> None:
    """Make a previously absorbed profile live again."""
    conn.execute(
        "UPDATE crm_profiles SET merged_into = NULL, updated_at = now() WHERE id = %s",
        (profile_id,),
    )


def log_merge(
    conn: Conn,
    *,
    survivor_id: int,
    absorbed_id: int,
    record_ids: Sequence[int],
    reason: str,
    bridge_record_ids: Sequence[int] = (),
) -> int:
    """Append a merge (or split) to the history; returns its id. `bridge_record_ids`: the
    records whose arrival or change caused it."""
    row = conn.execute(
        "INSERT INTO crm_merges (survivor_id, absorbed_id, record_ids, reason, bridge_record_ids)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (survivor_id, absorbed_id, list(record_ids), reason, list(bridge_record_ids)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def get_merge(conn: Conn, merge_id: int) -> dict[str, Any] | None:
    """One merge row, locked for update."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT * FROM crm_merges WHERE id = %s FOR UPDATE", (merge_id,)
        ).fetchone()


def mark_merge_undone(conn: Conn, merge_id: int, actor: str) -> None:
    """Record that a merge was undone."""
    conn.execute(
        "UPDATE crm_merges SET undone_at = now(), undone_by = %s WHERE id = %s",
        (actor, merge_id),
    )


def restore_redirects(conn: Conn, absorbed_id: int, survivor_id: int) -> None:
    """Re-point profiles that had merged into `absorbed_id` (then flattened into the live
    `survivor_id`) back to it."""
    conn.execute(
        "UPDATE crm_profiles SET merged_into = %s WHERE merged_into = %s AND id IN"
        " (SELECT absorbed_id FROM crm_merges WHERE survivor_id = %s AND undone_at IS NULL)",
        (absorbed_id, survivor_id, absorbed_id),
    )


def merges_of_profile(conn: Conn, profile_id: int) -> list[dict[str, Any]]:
    """Merge history involving a profile, newest first."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT id, survivor_id, absorbed_id, record_ids, reason, merged_at, undone_at"
            " FROM crm_merges WHERE survivor_id = %s OR absorbed_id = %s ORDER BY id DESC",
            (profile_id, profile_id),
        ).fetchall()


def records_for_golden(conn: Conn, profile_id: int) -> list[dict[str, Any]]:
    """The records of a profile with what survivorship needs."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT id, source, trust, attributes, observed_at FROM crm_records"
            " WHERE profile_id = %s ORDER BY id",
            (profile_id,),
        ).fetchall()


def set_profile_state(
    conn: Conn, profile_id: int, *, attributes: dict[str, Any], identified: bool
) -> None:
    """Store a profile's golden attributes and whether it carries a strong identifier."""
    conn.execute(
        "UPDATE crm_profiles SET attributes = %s, identified = %s, updated_at = now()"
        " WHERE id = %s",
        (Jsonb(attributes), identified, profile_id),
    )


def get_profile(conn: Conn, profile_id: int) -> dict[str, Any] | None:
    """One profile row."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM crm_profiles WHERE id = %s", (profile_id,)).fetchone()


def resolve_profile_id(conn: Conn, profile_id: int) -> int | None:
    """The live id a profile id redirects to (itself when live); None when unknown."""
    row = conn.execute("SELECT crm_resolve_profile(%s)", (profile_id,)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def member_profile_ids(conn: Conn, profile_id: int) -> list[int]:
    """A live profile and every profile redirected to it."""
    rows = conn.execute(
        "SELECT id FROM crm_profiles WHERE id = %s OR merged_into = %s ORDER BY id",
        (profile_id, profile_id),
    ).fetchall()
    return [int(r[0]) for r in rows]


def profile_identifiers(conn: Conn, profile_id: int) -> list[dict[str, Any]]:
    """Identifiers of a profile's records with their source."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        # blocked: blocked everywhere, or every record of this profile holding it was unlinked
        return cur.execute(
            "SELECT i.kind, i.value, (array_agg(r.source ORDER BY i.created_at))[1] AS source,"
            " min(i.created_at) AS created_at,"
            " bool_or(b.kind IS NOT NULL) OR bool_and(i.unlinked_by_merge IS NOT NULL) AS blocked"
            " FROM crm_identifiers i JOIN crm_records r ON r.id = i.record_id"
            " LEFT JOIN crm_identifier_blocks b ON b.kind = i.kind AND b.value = i.value"
            " WHERE r.profile_id = %s GROUP BY i.kind, i.value ORDER BY i.kind, i.value",
            (profile_id,),
        ).fetchall()


def profile_by_identifier(conn: Conn, kind: str, value: str) -> int | None:
    """The live profile holding an identifier: one it links first (an unmerge may have unlinked it
    from a record), then the lowest id."""
    row = conn.execute(
        "SELECT r.profile_id FROM crm_identifiers i JOIN crm_records r ON r.id = i.record_id"
        " WHERE i.kind = %s AND i.value = %s"
        " ORDER BY i.unlinked_by_merge IS NOT NULL, r.profile_id LIMIT 1",
        (kind, value),
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def list_profiles(
    conn: Conn, *, after_id: int, limit: int, stage: str | None = None
) -> list[dict[str, Any]]:
    """Live profiles by id (keyset pagination)."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT id, identified, attributes, lifecycle_stage, created_at, updated_at"
            " FROM crm_profiles WHERE merged_into IS NULL AND id > %s"
            " AND (%s::text IS NULL OR lifecycle_stage = %s) ORDER BY id LIMIT %s",
            (after_id, stage, stage, limit),
        ).fetchall()


def _split(keys: Iterable[Key]) -> tuple[list[str], list[str]]:
    pairs = list(keys)
    return [k for k, _ in pairs], [v for _, v in pairs]
