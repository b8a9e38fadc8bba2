"""Celery task metrics come from Celery's own signals: runs by state, latency and failures."""

from __future__ import annotations

import uuid

import pytest
from celery import Celery
from prometheus_client import REGISTRY

import cloud.workers.metrics  # noqa: F401 - connects the signal handlers, as in the worker


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_runs_latency_and_failures_are_counted_by_task_name() -> None:
    app = Celery(f"t{uuid.uuid4().hex[:6]}", broker="memory://", set_as_current=False)
    app.conf.task_always_eager = True
    ok_name, bad_name = f"t.ok.{uuid.uuid4().hex[:6]}", f"t.bad.{uuid.uuid4().hex[:6]}"

    @app.task(name=ok_name)
    def ok() -> int:
        return 1

    @app.task(name=bad_name)
    def bad() -> None:
        raise ValueError("boom")

    assert ok.apply().get() == 1
    assert ok.apply().get() == 1
    with pytest.raises(ValueError, match="boom"):
        bad.apply().get()
    assert _value("mallpulse_task_runs_total", {"task": ok_name, "state": "SUCCESS"}) == 2
    assert _value("mallpulse_task_runs_total", {"task": bad_name, "state": "FAILURE"}) == 1
    assert _value("mallpulse_task_failures_total", {"task": bad_name}) == 1
    assert _value("mallpulse_task_failures_total", {"task": ok_name}) == 0
    assert _value("mallpulse_task_duration_seconds_count", {"task": ok_name}) == 2
    assert _value("mallpulse_task_duration_seconds_count", {"task": bad_name}) == 1
