"""Ingest counters for Prometheus: outcomes by status and reason, batch size, commit lag."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from cloud.core.metrics import (
    INGEST_ACCEPTED,
    INGEST_BATCH_SIZE,
    INGEST_COMMIT_LAG,
    INGEST_DUPLICATE,
    INGEST_REJECTED,
)
from protos.mallpulse.v1 import telemetry_pb2


class Outcome(Protocol):
    """The fields of `cloud.ingest.service.Outcome` read here (it imports this module)."""

    @property
    def status(self) -> str:
        """accepted, duplicate or rejected."""

    @property
    def reason(self) -> str:
        """`code: detail` of a rejection."""


def count(outcomes: Sequence[Outcome]) -> None:
    """Count each envelope's fate (rejections by the reason code before the first colon)."""
    for o in outcomes:
        if o.status == "accepted":
            INGEST_ACCEPTED.inc()
        elif o.status == "duplicate":
            INGEST_DUPLICATE.inc()
        else:
            INGEST_REJECTED.labels(o.reason.partition(":")[0] or "unknown").inc()


def observe_commit(
    outcomes: Sequence[Outcome], decoded: Sequence[object], committed_at: datetime
) -> None:
    """The size of a committed batch, and for each stored envelope its commit time minus the
    end of its window (how late data reaches the dashboards)."""
    INGEST_BATCH_SIZE.observe(len(outcomes))
    now = committed_at.timestamp()
    for o, env in zip(outcomes, decoded, strict=True):
        if o.status == "accepted" and isinstance(env, telemetry_pb2.Envelope):
            end = env.window_end.seconds + env.window_end.nanos / 1e9
            INGEST_COMMIT_LAG.observe(max(now - end, 0.0))
