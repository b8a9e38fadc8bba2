"""The Celery application: `celery -A cloud.workers.app worker` (add `-B` on one worker for beat).

Celery needs a module-level app; its broker comes from MALLPULSE_CELERY_BROKER_URL, read when the
module loads. Task modules are listed in TASK_MODULES; each may define BEAT_SCHEDULE (a dict in
Celery's beat_schedule format) that is merged here.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from celery import Celery

TASK_MODULES: list[str] = []
TASK_MODULES.append("cloud.workers.ml_tasks")
TASK_MODULES.append("cloud.workers.footfall_tasks")
TASK_MODULES.append("cloud.workers.crm_tasks")
TASK_MODULES.append("cloud.workers.metrics")  # task metrics (Celery signals) and /metrics

_BROKER = os.environ.get("MALLPULSE_CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")

celery_app = Celery("mallpulse", broker=_BROKER, include=TASK_MODULES)
if _BROKER.startswith("filesystem://"):
    # Serverless transport for `mallpulse demo`: messages are files in a shared folder.
    _fs = os.environ.get("MALLPULSE_CELERY_FS_DIR", ".mallpulse-demo/celery")
    celery_app.conf.broker_transport_options = {
        "data_folder_in": f"{_fs}/queue",
        "data_folder_out": f"{_fs}/queue",
        "processed_folder": f"{_fs}/processed",
        "control_folder": f"{_fs}/control",
        "store_processed": False,
    }
celery_app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    enable_utc=True,
    broker_connection_retry_on_startup=True,
)


def beat_schedule() -> dict[str, Any]:
    """The merged BEAT_SCHEDULE of every task module."""
    schedule: dict[str, Any] = {}
    for name in TASK_MODULES:
        schedule.update(getattr(importlib.import_module(name), "BEAT_SCHEDULE", {}))
    return schedule


celery_app.conf.beat_schedule = beat_schedule()
