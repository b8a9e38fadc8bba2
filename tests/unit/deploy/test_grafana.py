"""The Grafana dashboard parses and every metric its panels query is one the code exports."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

import cloud.core.metrics  # noqa: F401 - registers the cloud metrics
from edge.health.metrics import CameraSample, GatewayCollector
from edge.outbox import OutboxStats
from edge.uplink.base import UplinkStats

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana" / "mallpulse-operations.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _exported(collector: Collector) -> set[str]:
    """Every series name the collector can produce (counter `_total`, histogram parts, ...)."""
    return {
        family.name + suffix
        for family in collector.collect()
        for suffix in _SUFFIXES.get(family.type, ("",))
    }


def _gateway() -> GatewayCollector:
    outbox = OutboxStats(depth=1, oldest_age_s=2.0, dropped_total=0, last_sequence=3)
    return GatewayCollector(
        outbox=lambda: outbox,
        cameras=lambda: [CameraSample("c", 1, 1.0, True)],
        uplink=UplinkStats,
    )


def _queried(dashboard: Mapping[str, object]) -> set[str]:
    text = json.dumps(dashboard["panels"])
    return set(re.findall(r"\bmallpulse_[a-z0-9_]+", text))


def test_dashboard_parses_and_queries_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exported = _exported(REGISTRY) | _exported(_gateway())
    queried = _queried(dashboard)
    assert queried - exported == set(), "dashboard queries metrics nobody exports"
    families = {"mallpulse_http_", "mallpulse_ingest_", "mallpulse_task_", "mallpulse_gateway_"}
    assert all(any(q.startswith(f) for q in queried) for f in families)  # every area is shown


def test_the_check_catches_an_unknown_metric() -> None:
    bogus = {"panels": [{"targets": [{"expr": "rate(mallpulse_no_such_thing_total[5m])"}]}]}
    assert _queried(bogus) - (_exported(REGISTRY) | _exported(_gateway())) == {
        "mallpulse_no_such_thing_total"
    }
