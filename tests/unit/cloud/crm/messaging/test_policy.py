"""Send-time policy as an (input, expected) table: suppression, consent, quiet hours in the
customer's time zone (deferred, never dropped), frequency caps and priorities."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from cloud.crm.messaging.policy import Action, Cap, Facts, PolicyConfig, decide

# 12:00 UTC is 20:00 in Shanghai, 07:00 in New York, 13:00 in Berlin.
NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
CONFIG = PolicyConfig(
    caps=(
        Cap(channel="sms", limit=1, window="day"),
        Cap(limit=3, window="day"),
        Cap(limit=5, window="week"),
    ),
    quiet_start=time(21, 0),
    quiet_end=time(8, 0),
)
BASE = Facts(
    channel="email",
    purpose="marketing",
    priority="normal",
    now=NOON,
    consent="granted",
    time_zone="Europe/Berlin",
)


def _ago(*hours: float, channel: str = "email") -> list[tuple[str, datetime]]:
    return [(channel, NOON - timedelta(hours=h)) for h in hours]


CASES: list[tuple[str, dict[str, Any], Action, str, datetime | None]] = [
    ("plain marketing", {}, Action.SEND, "within caps", None),
    (
        "transactional ignores consent",
        {"purpose": "transactional", "consent": None},
        Action.SEND,
        "transactional",
        None,
    ),
    (
        "no consent",
        {"consent": None},
        Action.SKIP,
        "no marketing consent on email (never given)",
        None,
    ),
    ("pending double opt-in", {"consent": "pending"}, Action.SKIP, "(pending)", None),
    ("withdrawn", {"consent": "denied"}, Action.SKIP, "(denied)", None),
    (
        "in-app needs no consent",
        {"channel": "inapp", "consent": None},
        Action.SEND,
        "within caps",
        None,
    ),
    (
        "hard bounce stops transactional too",
        {"purpose": "transactional", "suppression": "hard_bounce"},
        Action.SKIP,
        "hard bounce",
        None,
    ),
    ("complaint stops marketing", {"suppression": "complaint"}, Action.SKIP, "complaint", None),
    (
        "unsubscribe stops marketing",
        {"suppression": "unsubscribe"},
        Action.SKIP,
        "unsubscribe",
        None,
    ),
    (
        "unsubscribe leaves transactional",
        {"purpose": "transactional", "suppression": "unsubscribe"},
        Action.SEND,
        "transactional",
        None,
    ),
    (
        "quiet hours in New York: deferred to 08:00 local",
        {"time_zone": "America/New_York"},
        Action.DEFER,
        "quiet hours 21:00-08:00 in America/New_York",
        datetime(2026, 12, 5, 13, 0, tzinfo=UTC),
    ),
    (
        "Shanghai at 20:00 is not quiet",
        {"time_zone": "Asia/Shanghai"},
        Action.SEND,
        "within caps",
        None,
    ),
    (
        "Shanghai at 21:30 is deferred to the next morning",
        {"time_zone": "Asia/Shanghai", "now": NOON + timedelta(hours=1, minutes=30)},
        Action.DEFER,
        "Asia/Shanghai",
        datetime(2026, 12, 6, 0, 0, tzinfo=UTC),
    ),
    (
        "quiet hours hold even for high priority marketing",
        {"time_zone": "America/New_York", "priority": "high"},
        Action.DEFER,
        "quiet hours",
        None,
    ),
    (
        "unknown zone falls back to the default, said so",
        {"time_zone": "Mars/Olympus", "now": NOON + timedelta(hours=10)},
        Action.DEFER,
        "unknown time zone 'Mars/Olympus'",
        datetime(2026, 12, 6, 8, 0, tzinfo=UTC),
    ),
    (
        "transactional is never deferred",
        {"purpose": "transactional", "time_zone": "America/New_York"},
        Action.SEND,
        "transactional",
        None,
    ),
    (
        "two today: within the daily cap",
        {"recent_sends": _ago(1, 2)},
        Action.SEND,
        "within caps",
        None,
    ),
    (
        "three today: deferred until the oldest leaves the day",
        {"recent_sends": _ago(1, 2, 5)},
        Action.DEFER,
        "frequency cap 3/day on all channels reached (3 sent)",
        NOON + timedelta(hours=19),
    ),
    (
        "sends older than the window do not count",
        {"recent_sends": _ago(1, 2, 25)},
        Action.SEND,
        "within caps",
        None,
    ),
    ("weekly cap", {"recent_sends": _ago(30, 40, 50, 60, 70)}, Action.DEFER, "5/week", None),
    (
        "per-channel cap on sms",
        {"channel": "sms", "recent_sends": _ago(3, channel="sms")},
        Action.DEFER,
        "frequency cap 1/day on sms",
        None,
    ),
    (
        "an sms send does not count against the email channel cap",
        {"recent_sends": _ago(3, channel="sms")},
        Action.SEND,
        "within caps",
        None,
    ),
    (
        "capped high priority goes anyway",
        {"priority": "high", "recent_sends": _ago(1, 2, 3)},
        Action.SEND,
        "sent anyway: high priority",
        None,
    ),
    (
        "capped low priority is dropped",
        {"priority": "low", "recent_sends": _ago(1, 2, 3)},
        Action.SKIP,
        "low priority messages are dropped",
        None,
    ),
    (
        "transactional is never capped",
        {"purpose": "transactional", "recent_sends": _ago(1, 2, 3, 4)},
        Action.SEND,
        "transactional",
        None,
    ),
]


@pytest.mark.parametrize(
    ("changes", "action", "reason", "until"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_policy_table(
    changes: dict[str, Any], action: Action, reason: str, until: datetime | None
) -> None:
    decision = decide(replace(BASE, **changes), CONFIG)
    assert decision.action is action, decision
    assert reason in decision.reason, decision.reason
    if until is not None:
        assert decision.until == until
    assert (decision.until is not None) == (action is Action.DEFER)


def test_a_deferral_never_lands_inside_quiet_hours_again() -> None:
    facts = replace(BASE, time_zone="America/New_York")
    first = decide(facts, CONFIG)
    assert first.until is not None
    assert decide(replace(facts, now=first.until), CONFIG).action is Action.SEND


def test_an_unknown_default_zone_is_a_config_error_naming_it() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere/Land'"):
        PolicyConfig(default_time_zone="Nowhere/Land")
