"""Store-and-forward outbox: SQLite (WAL) queue of envelopes, put / peek / ack."""

from edge.outbox.errors import OutboxCorruptError, OutboxError
from edge.outbox.sqlite import OutboxEntry, OutboxStats, SqliteOutbox, envelope_kind

__all__ = [
    "OutboxCorruptError",
    "OutboxEntry",
    "OutboxError",
    "OutboxStats",
    "SqliteOutbox",
    "envelope_kind",
]
