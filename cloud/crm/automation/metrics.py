"""Prometheus metrics of automation (default registry: the worker's /metrics serves them)."""

from __future__ import annotations

from prometheus_client import Counter

ENROLLED = Counter(
    "mallpulse_automation_enrolled", "Executions started, by trigger kind.", ["trigger"]
)
STEPS = Counter(
    "mallpulse_automation_steps",
    "Step events (entered, completed, failed, waiting, exited, converted, migrated).",
    ["event"],
)
ACTIONS = Counter(
    "mallpulse_automation_actions",
    "Actions taken (journalled), by kind and outcome; a replayed step does not count again.",
    ["kind", "ok"],
)
