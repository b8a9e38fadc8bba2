"""Event storage upkeep: monthly partitions created ahead (plain PostgreSQL) and retention per
source (rows deleted in chunks; whole partitions or chunks dropped once every source is done
with them); message ids are remembered for a fixed de-duplication window."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from cloud.crm.events import repository as repo

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]

#: A retry is recognised by its messageId for this long (Segment de-duplicates for 24 h).
MESSAGE_ID_WINDOW = timedelta(days=35)
#: Rows deleted per transaction, so retention never holds long locks.
DELETE_CHUNK = 10_000


@dataclass(frozen=True)
class RetentionResult:
    """What one retention pass removed."""

    deleted: int
    partitions_dropped: int
    message_ids_forgotten: int


def ensure_partitions(conn: Conn, *, months_back: int = 1, months_ahead: int = 3) -> int:
    """Create the monthly partitions around now and commit; how many were created."""
    created = repo.ensure_partitions(conn, months_back=months_back, months_ahead=months_ahead)
    conn.commit()
    log.info("event partitions ensured", extra={"created": created})
    return created


def apply_retention(conn: Conn, *, now: datetime) -> RetentionResult:
    """Delete each source's events past its retention (chunked, a commit per chunk); drop
    whole partitions older than the longest retention when every source has one."""
    sources = repo.list_sources(conn)
    deleted = 0
    for source in sources:
        if source.retention_days is None:
            continue
        cutoff = now - timedelta(days=source.retention_days)
        while True:
            n = repo.delete_older_than(conn, source.id, cutoff, limit=DELETE_CHUNK)
            conn.commit()
            deleted += n
            if n < DELETE_CHUNK:
                break
    dropped = 0
    if sources and all(s.retention_days is not None for s in sources):
        longest = max(s.retention_days or 0 for s in sources)
        dropped = repo.drop_partitions_before(conn, now - timedelta(days=longest))
        conn.commit()
    forgotten = repo.delete_message_ids_before(conn, now - MESSAGE_ID_WINDOW)
    conn.commit()
    result = RetentionResult(deleted, dropped, forgotten)
    log.info("event retention applied", extra=result.__dict__)
    return result
