"""Exceptions of the outbox."""

from __future__ import annotations

from edge.errors import EdgeError


class OutboxError(EdgeError):
    """The outbox could not store, read or delete envelopes."""


class OutboxCorruptError(OutboxError):
    """The outbox file is not a healthy SQLite database."""
