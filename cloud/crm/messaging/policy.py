"""Send-time policy: consent, suppression, quiet hours, frequency caps and priorities, evaluated
when a message leaves (not when it was queued). Pure: the dispatcher gathers the facts.

Rules, in order (the first that decides wins; every decision carries its reason):
1. suppression: a hard bounce stops every message on that channel; a complaint or an unsubscribe
   stops marketing on it (transactional mail still reaches the customer);
2. consent: marketing needs a `granted` marketing consent for the channel (`pending`, `denied` or
   none: skipped); in-app messages have no consent channel and need none;
3. quiet hours (marketing only), in the customer's own time zone: deferred to their end, never
   dropped;
4. frequency caps (marketing only), per channel and overall over a day or a week: a `high`
   priority message goes anyway, `normal` is deferred until the oldest counted send leaves the
   window, `low` is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

Purpose = Literal["transactional", "marketing"]
Priority = Literal["high", "normal", "low"]
#: Channels that have a consent of their own (cloud.crm.consent.Channel).
CONSENT_CHANNELS = frozenset({"email", "sms", "push", "whatsapp", "wechat", "phone", "post"})
WINDOWS = {"day": timedelta(days=1), "week": timedelta(days=7)}
#: Countries with a single time zone: a profile's country then says its zone.
SINGLE_ZONE_COUNTRIES = {
    "CN": "Asia/Shanghai", "HK": "Asia/Hong_Kong", "MO": "Asia/Macau", "TW": "Asia/Taipei",
    "SG": "Asia/Singapore", "JP": "Asia/Tokyo", "KR": "Asia/Seoul", "TH": "Asia/Bangkok",
    "GB": "Europe/London", "DE": "Europe/Berlin", "FR": "Europe/Paris", "IT": "Europe/Rome",
}  # fmt: skip


class Action(StrEnum):
    """What happens to the message now."""

    SEND = "send"
    DEFER = "defer"
    SKIP = "skip"


class Cap(BaseModel):
    """At most `limit` marketing messages per `window`, on `channel` or (None) on all of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channel: str | None = Field(default=None, description="The channel; none: all channels.")
    limit: int = Field(ge=0, description="Most marketing messages in the window.")
    window: Literal["day", "week"] = Field(description="The sliding window.")


class PolicyConfig(BaseModel):
    """Caps and quiet hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    caps: tuple[Cap, ...] = Field(
        default=(Cap(limit=3, window="day"), Cap(limit=10, window="week")),
        description="Frequency caps on marketing messages.",
    )
    quiet_start: time = Field(default=time(21, 0), description="Quiet hours start (local).")
    quiet_end: time = Field(default=time(8, 0), description="Quiet hours end (local).")
    default_time_zone: str = Field(
        default="UTC", description="Time zone of customers whose profile names none."
    )
    country_time_zones: dict[str, str] = Field(
        default_factory=lambda: dict(SINGLE_ZONE_COUNTRIES),
        description="Time zone by profile country (ISO 3166-1 alpha-2) when it names no zone.",
    )

    @field_validator("default_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if _zone_or_none(value) is None:
            raise ValueError(f"unknown time zone {value!r}")
        return value

    @field_validator("country_time_zones")
    @classmethod
    def _zones(cls, value: dict[str, str]) -> dict[str, str]:
        for country, zone in value.items():
            if _zone_or_none(zone) is None:
                raise ValueError(f"unknown time zone {zone!r} for {country}")
        return {k.upper(): v for k, v in value.items()}

    def zone_of(self, time_zone: str | None, country: str | None) -> str | None:
        """The profile's own zone, else its country's (when configured), else None."""
        if time_zone:
            return time_zone
        return self.country_time_zones.get((country or "").upper())


def _zone_or_none(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass(frozen=True)
class Facts:
    """What the policy needs to know about one message, read when it leaves."""

    channel: str
    purpose: Purpose
    priority: Priority
    now: datetime
    consent: str | None = None  # status of the channel's marketing consent, None: never asked
    suppression: str | None = None  # hard_bounce / complaint / unsubscribe on this channel
    recent_sends: Sequence[tuple[str, datetime]] = ()  # the person's sends: (channel, sent_at)
    time_zone: str | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome and its reason; `until` for a deferral."""

    action: Action
    reason: str
    until: datetime | None = None


def decide(facts: Facts, config: PolicyConfig) -> Decision:
    """Apply the rules in order; see the module docstring."""
    marketing = facts.purpose == "marketing"
    if facts.suppression == "hard_bounce":
        return Decision(Action.SKIP, f"suppressed on {facts.channel}: hard bounce")
    if facts.suppression and marketing:
        return Decision(Action.SKIP, f"suppressed on {facts.channel}: {facts.suppression}")
    if not marketing:
        return Decision(Action.SEND, "transactional: no marketing consent, quiet hours or caps")
    if facts.channel in CONSENT_CHANNELS and facts.consent != "granted":
        status = facts.consent or "never given"
        return Decision(Action.SKIP, f"no marketing consent on {facts.channel} ({status})")
    quiet = _quiet_until(facts, config)
    if quiet is not None:
        return quiet
    return _caps(facts, config)


def _quiet_until(facts: Facts, config: PolicyConfig) -> Decision | None:
    zone = _zone_or_none(facts.time_zone)
    note = "" if zone or not facts.time_zone else f" (unknown time zone {facts.time_zone!r})"
    zone = zone or ZoneInfo(config.default_time_zone)
    local = facts.now.astimezone(zone)
    start, end, t = config.quiet_start, config.quiet_end, local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return None
    until = datetime.combine(local.date(), end, tzinfo=zone)
    if until <= local:
        until += timedelta(days=1)
    return Decision(
        Action.DEFER,
        f"quiet hours {start:%H:%M}-{end:%H:%M} in {zone.key}{note}; deferred to their end",
        until=until.astimezone(facts.now.tzinfo),
    )


def _caps(facts: Facts, config: PolicyConfig) -> Decision:
    for cap in config.caps:
        if cap.channel is not None and cap.channel != facts.channel:
            continue
        window = WINDOWS[cap.window]
        counted = sorted(
            at
            for ch, at in facts.recent_sends
            if facts.now - window < at <= facts.now and cap.channel in (None, ch)
        )
        if len(counted) < cap.limit:
            continue
        scope = cap.channel or "all channels"
        label = f"frequency cap {cap.limit}/{cap.window} on {scope} reached ({len(counted)} sent)"
        if facts.priority == "high":
            return Decision(Action.SEND, f"{label}; sent anyway: high priority")
        if facts.priority == "low" or cap.limit == 0:
            return Decision(Action.SKIP, f"{label}; low priority messages are dropped")
        free_at = counted[len(counted) - cap.limit] + window
        return Decision(Action.DEFER, f"{label}; deferred until a slot frees", until=free_at)
    return Decision(Action.SEND, "marketing consent granted, outside quiet hours, within caps")
