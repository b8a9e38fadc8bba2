"""The Celery application: `celery -A cloud.workers.app worker` (add `-B` on one worker for beat).

Celery needs a module-level app, so this module builds Settings from the environment when it
loads; tasks take theirs from `worker_settings()` (Settings too: nothing else reads the
environment). A bad MALLPULSE_*
value stops the process with one line naming the variable (exit status 2), no traceback. The beat
schedule comes from `cloud.workers.schedule`, so it does not depend on the import order of the
task modules listed in TASK_MODULES.
"""

from __future__ import annotations

import sys

from celery import Celery

from cloud.core.errors import SettingsError
from cloud.core.settings import Settings, settings_from_env
from cloud.workers.schedule import beat_schedule

TASK_MODULES: list[str] = []
TASK_MODULES.append("cloud.workers.ml_tasks")
TASK_MODULES.append("cloud.workers.footfall_tasks")
TASK_MODULES.append("cloud.workers.crm_tasks")
TASK_MODULES.append("cloud.crm.events.tasks")  # event partitions ahead and retention
TASK_MODULES.append("cloud.crm.messaging.tasks")  # the message outbox dispatcher
TASK_MODULES.append("cloud.crm.segments.tasks")  # live segment membership, sweep, sizes
TASK_MODULES.append("cloud.crm.automation.tasks")  # workflow triggers, steps, periodic triggers
TASK_MODULES.append("cloud.crm.experiments.tasks")  # daily experiment result snapshots
TASK_MODULES.append("cloud.crm.scoring.tasks")  # incremental lead scores, rescoring sweep
TASK_MODULES.append("cloud.workers.metrics")  # task metrics (Celery signals) and /metrics


def create_celery(settings: Settings) -> Celery:
    """The Celery app for these settings: broker, task modules, beat schedule."""
    app = Celery("mallpulse", broker=settings.celery_broker_url, include=TASK_MODULES)
    if settings.celery_broker_url.startswith("filesystem://"):
        # Serverless transport for `mallpulse demo`: messages are files in a shared folder.
        fs = settings.celery_fs_dir
        app.conf.broker_transport_options = {
            "data_folder_in": f"{fs}/queue",
            "data_folder_out": f"{fs}/queue",
            "processed_folder": f"{fs}/processed",
            "control_folder": f"{fs}/control",
            "store_processed": False,
        }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        beat_schedule=beat_schedule(settings),
    )
    return app


def _settings_or_exit() -> Settings:
    """Settings from the environment; a bad value ends the process naming the variable."""
    try:
        return settings_from_env()
    except SettingsError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        raise SystemExit(2) from None


celery_app = create_celery(_settings_or_exit())


def worker_settings() -> Settings:
    """Settings for one task run, from the environment (checked when the app loaded; a task run
    with a bad value since fails with a SettingsError naming the variable)."""
    return settings_from_env()
