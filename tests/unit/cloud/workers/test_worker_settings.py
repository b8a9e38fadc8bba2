"""Workers take every setting from Settings: the beat schedule is whole whatever module is
imported first, intervals come from MALLPULSE_* values, a bad value is one clear line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.core.settings import Settings

REPO = Path(__file__).resolve().parents[4]
ALL_ENTRIES = {
    "ml-learn-churn",
    "ml-score-all",
    "ml-learn-footfall",
    "ml-fit-clv",
    "footfall-prune",
    "footfall-mark-stale",
    "crm-expire-points",
    "crm-review-tiers",
    "messaging-dispatch",
    "messaging-bandit-settle",
    "segments-update",
    "segments-sweep",
    "segments-snapshot",
    "events-ensure-partitions",
    "events-retention",
    "automation-triggers",
    "automation-advance",
    "automation-periodic",
    "experiments-snapshot",
    "scoring-update",
    "scoring-sweep",
}
_PRINT_SCHEDULE = (
    "from cloud.workers.app import celery_app\n"
    "import json\n"
    "print(json.dumps({k: [v['task'], v['schedule']]"
    " for k, v in celery_app.conf.beat_schedule.items()}))\n"
)


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter (imports happen once per process) with extra env."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLPULSE_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "first",
    [
        "cloud.workers.app",
        "cloud.workers.ml_tasks",
        "cloud.workers.footfall_tasks",
        "cloud.workers.crm_tasks",
        "cloud.crm.messaging.tasks",
    ],
)
def test_the_beat_schedule_is_whole_whatever_is_imported_first(first: str) -> None:
    run = _python(f"import {first}\n" + _PRINT_SCHEDULE)
    assert run.returncode == 0, run.stderr
    assert set(json.loads(run.stdout)) == ALL_ENTRIES


def test_ml_intervals_come_from_the_settings_variables() -> None:
    run = _python(
        "import cloud.workers.ml_tasks\n" + _PRINT_SCHEDULE,
        MALLPULSE_ML_CONSUME_INTERVAL_S="2.5",
        MALLPULSE_ML_SCORE_INTERVAL_S="600",
    )
    assert run.returncode == 0, run.stderr
    schedule = json.loads(run.stdout)
    assert schedule["ml-learn-churn"] == ["ml.learn_churn", 2.5]
    assert schedule["ml-score-all"] == ["ml.score_all", 600.0]


def test_worker_settings_and_the_broker_come_from_the_environment(tmp_path: Path) -> None:
    code = (
        "from cloud.workers.app import celery_app, worker_settings\n"
        "import json\n"
        "s = worker_settings()\n"
        "print(json.dumps([celery_app.conf.broker_url, s.footfall_retention_days,"
        " celery_app.conf.broker_transport_options['data_folder_in']]))\n"
    )
    run = _python(
        code,
        MALLPULSE_CELERY_BROKER_URL="filesystem://",
        MALLPULSE_CELERY_FS_DIR=str(tmp_path),
        MALLPULSE_FOOTFALL_RETENTION_DAYS="90",
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["filesystem://", 90, f"{tmp_path}/queue"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MALLPULSE_ML_CONSUME_INTERVAL_S", "5s"),
        ("MALLPULSE_ML_SCORE_INTERVAL_S", "-1"),
        ("MALLPULSE_FOOTFALL_RETENTION_DAYS", "a year"),
    ],
)
def test_a_bad_setting_stops_the_worker_with_one_clear_line(variable: str, value: str) -> None:
    """`celery -A cloud.workers.app ...` exits 2 naming the variable; no traceback."""
    run = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "cloud.workers.app", "report"],
        cwd=REPO,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("MALLPULSE_")},
            variable: value,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert variable in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_the_schedule_is_built_from_the_settings_object() -> None:
    from cloud.workers.schedule import beat_schedule

    schedule = beat_schedule(Settings(ml_consume_interval_s=7, ml_score_interval_s=120))
    assert set(schedule) == ALL_ENTRIES
    assert schedule["ml-learn-churn"] == {"task": "ml.learn_churn", "schedule": 7.0}
    assert schedule["ml-score-all"] == {"task": "ml.score_all", "schedule": 120.0}


_ENV_READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](\w+)""")


@pytest.mark.parametrize(
    "module", sorted((REPO / "cloud" / "workers").glob("*.py")), ids=lambda p: p.name
)
def test_no_worker_module_reads_a_setting_from_the_environment(module: Path) -> None:
    """MALLPULSE_* values come from Settings only (PROMETHEUS_MULTIPROC_DIR is the library's)."""
    names = _ENV_READ.findall(module.read_text(encoding="utf-8"))
    assert [n for n in names if n.startswith("MALLPULSE_")] == []
