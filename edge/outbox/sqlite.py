"""SQLite store-and-forward outbox: envelopes are durable before they are sent.

Durability choices (see docs/edge-agent.md): the database runs in WAL mode; connections that
*store* envelopes use `synchronous=FULL`, so a `put` that returned survives a power cut; the
connection of the uplink thread that *deletes* acknowledged envelopes uses `synchronous=NORMAL`
(still corruption-safe in WAL mode): a power cut may undo the last deletions, which only means
that envelope is sent again and the cloud deduplicates it on (device, sequence).

Sequence numbers come from an AUTOINCREMENT key, so they are monotonic and never reused, also
after the outbox was drained, after drops and across restarts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge.outbox.errors import OutboxCorruptError, OutboxError
from protos.mallpulse.v1 import telemetry_pb2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_created_at ON outbox (created_at);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped_total', 0);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One stored envelope: its sequence, payload kind ('window' or 'health') and bytes."""

    sequence: int
    kind: str
    created_at: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Depth, age of the oldest entry, drop counter and the last sequence handed out."""

    depth: int
    oldest_age_s: float
    dropped_total: int
    last_sequence: int


def envelope_kind(envelope: telemetry_pb2.Envelope) -> str:
    """The topic kind of an envelope: the name of its payload ('window', 'health')."""
    kind = envelope.WhichOneof("payload")
    if kind is None:
        raise OutboxError("an envelope without payload cannot be stored")
    return kind


class SqliteOutbox:
    """Durable FIFO of envelopes keyed by a per-device sequence; safe to use from many threads."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_entries: int = 100_000,
        max_age_s: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._clock = clock
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"cannot create the outbox folder {self.path.parent}: {exc}") from exc
        conn = self._conn()
        self._check_integrity(conn)
        try:
            conn.executescript(_SCHEMA)
            # The depth is kept in `meta` so that no put or stats call has to count the table;
            # it is recounted once here, in case the file comes from an older version.
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) "
                "VALUES ('depth', (SELECT COUNT(*) FROM outbox))"
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot prepare the outbox {self.path}: {exc}") from exc

    # -- connections ---------------------------------------------------------------------

    def _open(self, *, synchronous: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.DatabaseError as exc:
            raise OutboxCorruptError(f"cannot open the outbox {self.path}: {exc}") from exc
        with self._lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection for storing (synchronous=FULL)."""
        if self._closed:
            raise OutboxError("the outbox is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "full", None)
        if conn is None:
            conn = self._open(synchronous="FULL")
            self._local.full = conn
        return conn

    def _ack_conn(self) -> sqlite3.Connection:
        """This thread's connection for deleting acknowledged entries (synchronous=NORMAL)."""
        if self._closed:
            raise OutboxError("the outbox is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "normal", None)
        if conn is None:
            conn = self._open(synchronous="NORMAL")
            # Checkpoints (which fsync) are left to the storing connections, so the uplink
            # thread never waits for the disk; the WAL is checkpointed on the next put.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.normal = conn
        return conn

    def _check_integrity(self, conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as exc:
            raise OutboxCorruptError(f"the outbox {self.path} is not a database: {exc}") from exc
        if row is None or row[0] != "ok":
            raise OutboxCorruptError(f"the outbox {self.path} failed its integrity check: {row}")

    def close(self) -> None:
        """Close every connection (a WAL checkpoint happens on the last close)."""
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    # -- writing ---------------------------------------------------------------------------

    def put(self, envelope: telemetry_pb2.Envelope) -> int:
        """Store one envelope, stamping the next sequence into it; returns that sequence."""
        return self.put_many([envelope])[0]

    def put_many(self, envelopes: Sequence[telemetry_pb2.Envelope]) -> list[int]:
        """Store envelopes in one durable transaction; each gets the next sequence number."""
        kinds = [envelope_kind(env) for env in envelopes]
        now = self._clock()
        with self._write(self._conn(), "cannot store envelopes in") as conn:
            last = self._last_sequence(conn)
            seqs = []
            for env, kind in zip(envelopes, kinds, strict=True):
                last += 1
                env.sequence = last
                conn.execute(
                    "INSERT INTO outbox (sequence, kind, created_at, payload) VALUES (?, ?, ?, ?)",
                    (last, kind, now, env.SerializeToString()),
                )
                seqs.append(last)
            self._add_depth(conn, len(seqs))
            self._enforce_bounds(conn, now)
        return seqs

    @contextmanager
    def _write(self, conn: sqlite3.Connection, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any error."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise OutboxError(f"{what} {self.path}: {exc}") from exc

    @staticmethod
    def _last_sequence(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _add_depth(conn: sqlite3.Connection, delta: int) -> int:
        """Adjust the stored depth inside the caller's transaction; returns the new depth."""
        row = conn.execute(
            "UPDATE meta SET value = value + ? WHERE key = 'depth' RETURNING value", (delta,)
        ).fetchone()
        return int(row[0])

    def _enforce_bounds(self, conn: sqlite3.Connection, now: float) -> int:
        """Drop the oldest entries beyond max_entries or max_age_s; returns how many."""
        dropped = conn.execute(
            "DELETE FROM outbox WHERE created_at < ?", (now - self.max_age_s,)
        ).rowcount
        depth = self._add_depth(conn, -dropped)
        excess = depth - self.max_entries
        if excess > 0:
            removed = conn.execute(
                "DELETE FROM outbox WHERE sequence IN "
                "(SELECT sequence FROM outbox ORDER BY sequence LIMIT ?)",
                (excess,),
            ).rowcount
            self._add_depth(conn, -removed)
            dropped += removed
        if dropped:
            conn.execute(
                "UPDATE meta SET value = value + ? WHERE key = 'dropped_total'", (dropped,)
            )
        return dropped

    def expire(self) -> int:
        """Apply the age bound now (also done on every put); returns how many were dropped."""
        with self._write(self._conn(), "cannot expire entries in") as conn:
            return self._enforce_bounds(conn, self._clock())

    # -- reading and acknowledging ---------------------------------------------------------

    def peek(self, *, after: int = 0, limit: int = 100) -> list[OutboxEntry]:
        """Up to `limit` entries with a sequence above `after`, oldest first."""
        try:
            rows = (
                self._ack_conn()
                .execute(
                    "SELECT sequence, kind, created_at, payload FROM outbox "
                    "WHERE sequence > ? ORDER BY sequence LIMIT ?",
                    (after, limit),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot read the outbox {self.path}: {exc}") from exc
        return [OutboxEntry(int(s), str(k), float(c), bytes(p)) for s, k, c, p in rows]

    def ack(self, sequences: Iterable[int]) -> int:
        """Delete acknowledged entries in one transaction; returns how many were present."""
        seqs = [(int(s),) for s in sequences]
        if not seqs:
            return 0
        with self._write(self._ack_conn(), "cannot delete acknowledged entries in") as conn:
            deleted = int(conn.executemany("DELETE FROM outbox WHERE sequence = ?", seqs).rowcount)
            self._add_depth(conn, -deleted)
        return deleted

    def ack_ranges(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Delete the entries inside inclusive (first, last) ranges in one transaction; returns
        how many were present (a cloud acknowledgement names ranges, never single rows)."""
        spans = [(int(a), int(b)) for a, b in ranges]
        if not spans:
            return 0
        with self._write(self._ack_conn(), "cannot delete acknowledged entries in") as conn:
            deleted = int(
                conn.executemany(
                    "DELETE FROM outbox WHERE sequence BETWEEN ? AND ?", spans
                ).rowcount
            )
            self._add_depth(conn, -deleted)
        return deleted

    def read(self, sequences: Sequence[int]) -> list[OutboxEntry]:
        """The entries with these sequences that are still stored, oldest first."""
        if not sequences:
            return []
        out: list[OutboxEntry] = []
        conn = self._ack_conn()
        try:
            for start in range(0, len(sequences), 500):  # SQLite's bound-parameter limit
                chunk = [int(s) for s in sequences[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT sequence, kind, created_at, payload FROM outbox "
                    f"WHERE sequence IN ({marks}) ORDER BY sequence",
                    chunk,
                ).fetchall()
                out += [OutboxEntry(int(s), str(k), float(c), bytes(p)) for s, k, c, p in rows]
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot read the outbox {self.path}: {exc}") from exc
        return sorted(out, key=lambda e: e.sequence)

    def stats(self) -> OutboxStats:
        """Depth, oldest age, drops and last sequence, read in one snapshot."""
        conn = self._ack_conn()
        try:
            conn.execute("BEGIN")
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                depth, dropped = meta["depth"], meta["dropped_total"]
                row = conn.execute("SELECT MIN(created_at) FROM outbox").fetchone()
                oldest = row[0] if row else None
                last = self._last_sequence(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot read the outbox {self.path}: {exc}") from exc
        age = max(0.0, self._clock() - float(oldest)) if oldest is not None else 0.0
        return OutboxStats(int(depth), age, int(dropped), last)
