"""Structured JSON logs of the edge agent, with a message id carried in a context variable."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

message_id_var: ContextVar[str | None] = ContextVar("message_id", default=None)


class MessageIdFilter(logging.Filter):
    """Adds the current message id (config sha, envelope sequence...) and device to records."""

    def __init__(self, device_id: str | None = None) -> None:
        super().__init__()
        self.device_id = device_id

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        if not hasattr(record, "message_id"):
            record.message_id = message_id_var.get()
        if not hasattr(record, "device_id"):
            record.device_id = self.device_id
        return True


def configure_logging(
    level: str = "INFO",
    *,
    fmt: str = "json",
    device_id: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send every log record to stderr as one JSON object per line (or text for humans)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(device_id)s %(message_id)s",
                rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(message_id)s] %(message)s")
        )
    handler.addFilter(MessageIdFilter(device_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
