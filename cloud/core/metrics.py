"""Prometheus metrics of the cloud processes (API, ingest, Celery workers, LISTEN hubs).

The metrics live in prometheus_client's default registry. A process that forks workers (Celery's
prefork pool, uvicorn with several workers) sets PROMETHEUS_MULTIPROC_DIR before it starts; then
every process writes its samples to files there and `exposition()` merges them.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # the client writes there as metrics are made
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

#: Latency buckets for requests, tasks and commit lag (seconds): 5 ms to 10 minutes.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

HTTP_REQUEST_SECONDS = Histogram(
    "mallpulse_http_request_duration_seconds",
    "API request latency by route template, method and status (its _count counts requests).",
    ["route", "method", "status"],
    buckets=_SECONDS,
)
INGEST_ACCEPTED = Counter("mallpulse_ingest_accepted", "Envelopes stored.")
INGEST_DUPLICATE = Counter("mallpulse_ingest_duplicate", "Envelopes already stored (acked again).")
INGEST_REJECTED = Counter(
    "mallpulse_ingest_rejected", "Envelopes dead-lettered, by reason.", ["reason"]
)
INGEST_BATCH_SIZE = Histogram(
    "mallpulse_ingest_batch_size",
    "Envelopes per ingest transaction.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
INGEST_COMMIT_LAG = Histogram(
    "mallpulse_ingest_commit_lag_seconds",
    "Commit time minus window end of each stored envelope.",
    buckets=_SECONDS,
)
TASK_RUNS = Counter("mallpulse_task_runs", "Celery task runs by task and final state.",
                    ["task", "state"])  # fmt: skip
TASK_FAILURES = Counter("mallpulse_task_failures", "Celery task failures by task.", ["task"])
TASK_SECONDS = Histogram(
    "mallpulse_task_duration_seconds", "Celery task run time by task.", ["task"], buckets=_SECONDS
)
LISTEN_SUBSCRIBERS = Gauge(
    "mallpulse_listen_subscribers",
    "Subscribers of this process's LISTEN hub.",
    ["channel"],
    multiprocess_mode="livesum",
)
LISTEN_RECONNECTS = Counter(
    "mallpulse_listen_reconnects", "Times a LISTEN hub opened its connection again.", ["channel"]
)
LISTEN_OVERFLOWS = Counter(
    "mallpulse_listen_overflows",
    "Times a slow subscriber's queue filled and it caught up from the database instead.",
    ["channel"],
)


def registry() -> CollectorRegistry:
    """The registry to expose: the default one, or the merged files of a multiprocess setup."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return REGISTRY
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=path)  # type: ignore[no-untyped-call]
    return merged


def exposition() -> tuple[bytes, str]:
    """The current samples in the Prometheus text format, and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST
