"""The beat schedule: every periodic task of every worker module, built in one place from
Settings (so it cannot depend on which task module happened to be imported first)."""

from __future__ import annotations

from typing import Any

from cloud.core.settings import Settings

_HOUR = 3600.0
_DAY = 24 * _HOUR


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Celery's beat_schedule: entry name -> task name and interval in seconds."""
    every = {
        # ml: learn each new batch of CRM events exactly once; rescore; refit daily
        "ml-learn-churn": ("ml.learn_churn", settings.ml_consume_interval_s),
        "ml-score-all": ("ml.score_all", settings.ml_score_interval_s),
        "ml-learn-footfall": ("ml.learn_footfall", _HOUR),
        "ml-fit-clv": ("ml.fit_clv", _DAY),
        # footfall: retention on plain PostgreSQL, devices silent without an offline message
        "footfall-prune": ("footfall.prune", _HOUR),
        "footfall-mark-stale": ("footfall.mark_stale", 60.0),
        # crm: loyalty point expiry and tier reviews
        "crm-expire-points": ("crm.expire_points", _DAY),
        "crm-review-tiers": ("crm.review_tiers", _DAY),
        # segments: membership from new events and changes; windows lapse; daily sizes
        "segments-update": ("crm.segments_update", 5.0),
        "segments-sweep": ("crm.segments_sweep", _HOUR),
        "segments-snapshot": ("crm.segments_snapshot", _DAY),
        # events: monthly partitions ahead (plain PostgreSQL), retention per source
        "events-ensure-partitions": ("events.ensure_partitions", _DAY),
        "events-retention": ("events.retention", _HOUR),
        # messaging: work the message outbox (sends, deferrals that came due, retries)
        "messaging-dispatch": ("messaging.dispatch", 5.0),
        # messaging: the channel bandit's trials whose engagement window lapsed
        "messaging-bandit-settle": ("messaging.bandit_settle", _HOUR),
        # scoring: incremental scores from new events and sales; rescoring after rule changes
        # and decay moving MQL/SQL levels
        "scoring-update": ("crm.scoring_update", 5.0),
        "scoring-sweep": ("crm.scoring_sweep", _HOUR),
        # automation: triggers from events, due steps, schedule/date/churn triggers
        "automation-triggers": ("automation.triggers", 2.0),
        "automation-advance": ("automation.advance", 2.0),
        "automation-periodic": ("automation.periodic", 60.0),
        # experiments: daily result snapshots of running experiments
        "experiments-snapshot": ("crm.experiments_snapshot", _DAY),
    }
    return {name: {"task": task, "schedule": float(s)} for name, (task, s) in every.items()}
