"""Read live events by id without passing one that may still commit.

Identity ids are handed out at insert and committed later, so a reader at watermark W can see
W+2 before W+1 commits. As `cloud/ml/churn/consumer.py` does, the read stops at the first
missing id while a transaction that writes to the table is open, and passes the gap when none
is. It is finer in one way: it remembers which writers were open when the gap was seen (only
they can still fill it), so a steady stream of later ingest transactions cannot hold a gap left
by a rollback back for ever.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from cloud.db.repositories import footfall_stream as repo
from cloud.db.repositories.footfall_stream import Conn, StreamEvent


@dataclass(frozen=True, slots=True)
class Hold:
    """A gap seen below `top` while the transactions `writers` were open."""

    top: int
    writers: frozenset[str]


@dataclass(frozen=True, slots=True)
class Read:
    """Events that can be passed for good, the new watermark, and the gap still held (if any)."""

    events: list[StreamEvent]
    watermark: int
    hold: Hold | None


def _passable(rows: list[StreamEvent], after: int, final_upto: int) -> int:
    """How many leading rows can be passed: all ids <= `final_upto`, then while ids run on."""
    last = after
    for i, row in enumerate(rows):
        if row.id > final_upto and row.id != last + 1:
            return i
        last = row.id
    return len(rows)


def read_committed(
    conn: Conn, after: int, stores: Collection[str], hold: Hold | None, limit: int = 1000
) -> Read:
    """The next events past `after` (bodies of `stores` only) that no open transaction can still
    precede."""
    final_upto = after
    if hold is not None and not repo.any_alive(conn, hold.writers):
        final_upto, hold = hold.top, None  # whatever is missing below its top is final now
    rows = repo.events_after(conn, after, stores, limit)
    n = _passable(rows, after, final_upto)
    if n < len(rows) and hold is None:
        writers = repo.open_writers(conn)
        if not writers:  # nothing can fill the gap any more: read again, pass all seen
            top = rows[-1].id
            rows = [r for r in repo.events_after(conn, after, stores, limit) if r.id <= top]
            n = len(rows)
        else:
            hold = Hold(rows[-1].id, writers)
    passed = rows[:n]
    return Read(passed, passed[-1].id if passed else after, hold)


def start_position(conn: Conn, lookback: int = 1000) -> int:
    """Where a hub starts reading: a little before the newest id, so a transaction that was
    still open when the hub started is not passed over."""
    return max(repo.newest_id(conn) - lookback, 0)
