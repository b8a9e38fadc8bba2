"""Best channel and send time: the bandit's state in PostgreSQL, the choice made at send, and
the outcomes that teach it.

Every marketing message queued through the hub is a trial of its channel (and of the local hour
bucket it leaves in). A trial settles once: `engaged` when an outcome (opened, clicked, replied)
arrives within `window_h` hours of the send, `no_engagement` when the window passes without one,
`not_sent` when the message was skipped or failed (it taught nothing). Settling adds the trial to
the person's counts and to the pooled counts of each segment they are in at that moment, which
are the cold-start prior of other members.

Outcomes arrive two ways: the tracking code calls `record_outcome(conn, message_id, outcome)`,
and the behavioural events `message.opened` / `message.clicked` / `message.replied` (with
`properties.message_id`) are read from crm_events. Settling is lazy (the person's trials are
settled before each choice and each preferences read, in the caller's transaction) and
`settle_due` settles everybody's due trials in batches for a periodic task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import psycopg
from prometheus_client import Counter
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.crm.messaging import repository as repo
from cloud.crm.messaging.bandit import Arm, Beta, Counts, Pick, segment_prior, thompson
from cloud.crm.messaging.builtin import BUILTIN
from cloud.crm.messaging.errors import MessagingInvalidInputError
from cloud.crm.messaging.policy import CONSENT_CHANNELS, PolicyConfig
from cloud.db.repositories import crm_identity as id_repo

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
Dimension = Literal["channel", "hour"]
#: Channels the bandit may pick, in tie-break order.
CHANNELS = ("email", "sms", "whatsapp", "wechat", "push", "inapp")
OUTCOMES = frozenset({"opened", "clicked", "replied"})
CHOICES = Counter(
    "mallpulse_messaging_bandit_choices",
    "Arms the bandit played by dimension (channel, hour) and arm.",
    ["dimension", "arm"],
)
SETTLED = Counter(
    "mallpulse_messaging_bandit_settled",
    "Bandit trials settled by outcome (engaged, no_engagement, not_sent).",
    ["outcome"],
)


class BanditConfig(BaseModel):
    """The outcome window, the prior's weight and the local send-hour buckets."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    window_h: int = Field(
        default=72, ge=1, le=24 * 30, description="Hours after a send an outcome still counts."
    )
    prior_weight: float = Field(
        default=10.0, gt=0, le=1000, description="Most pseudo-observations the segment prior has."
    )
    hour_buckets: tuple[int, ...] = Field(
        default=(8, 11, 14, 17), min_length=1, description="Local start hours of the buckets."
    )
    bucket_h: int = Field(default=3, ge=1, le=24, description="Hours in each bucket.")
    outcome_events: tuple[str, ...] = Field(
        default=("message.opened", "message.clicked", "message.replied"),
        description="Behavioural event names that count as engagement (properties.message_id).",
    )

    @model_validator(mode="after")
    def _buckets(self) -> BanditConfig:
        hours = sorted(self.hour_buckets)
        if len(hours) != len(set(hours)) or not all(0 <= h < 24 for h in hours):
            raise ValueError("hour_buckets must be distinct hours 0..23")
        if any(b - a < self.bucket_h for a, b in pairwise([*hours, hours[0] + 24])):
            raise ValueError("hour buckets overlap: starts closer than bucket_h")
        return self

    def bucket_of(self, local_hour: int) -> int | None:
        """The bucket (its start hour) holding a local hour, if any."""
        for start in self.hour_buckets:
            if (local_hour - start) % 24 < self.bucket_h:
                return start
        return None


DEFAULT = BanditConfig()


@dataclass(frozen=True)
class Plan:
    """How a message goes: its channel, when, and what the bandit saw (None: it was not asked)."""

    channel: str
    not_before: datetime | None = None
    hour_bucket: int | None = None
    time_zone: str | None = None
    channel_pick: Pick | None = None
    hour_pick: Pick | None = None
    candidates: tuple[str, ...] = ()

    def posterior(self) -> dict[str, Any]:
        """What is stored with the message: posterior means and draws per dimension."""
        out: dict[str, Any] = {}
        for name, pick in (("channel", self.channel_pick), ("hour", self.hour_pick)):
            if pick is not None:
                out[name] = {
                    "chosen": pick.name,
                    "means": {k: round(v, 4) for k, v in pick.means.items()},
                    "draws": {k: round(v, 4) for k, v in pick.draws.items()},
                }
        return out

    def reason(self) -> str:
        """The decision row's reason."""
        parts = []
        if self.channel_pick is not None:
            means = ", ".join(f"{k} {v:.3f}" for k, v in self.channel_pick.means.items())
            parts.append(f"channel {self.channel} by Thompson sampling (posterior means: {means})")
        if self.hour_pick is not None and self.hour_bucket is not None:
            means = ", ".join(f"{k}h {v:.3f}" for k, v in self.hour_pick.means.items())
            when = self.not_before.isoformat() if self.not_before else "now"
            parts.append(
                f"hour bucket {self.hour_bucket:02d}:00 in {self.time_zone} (posterior means:"
                f" {means}); not before {when}"
            )
        return "; ".join(parts)


@dataclass(frozen=True)
class ArmView:
    """One arm as the preferences endpoint shows it."""

    arm: str
    trials: int
    successes: int
    prior: Beta
    posterior: Beta


@dataclass(frozen=True)
class Preferences:
    """A person's posterior per channel and per local hour bucket."""

    profile_id: int
    time_zone: str
    window_h: int
    segments: list[int]
    channels: list[ArmView] = field(default_factory=list)
    hours: list[ArmView] = field(default_factory=list)


# --- zone and candidates ---------------------------------------------------------------------


def zone_for(conn: Conn, profile_id: int, policy: PolicyConfig) -> str:
    """The person's time zone as the policy resolves it (own, country's, else the default)."""
    attributes = repo.profile_attributes(conn, profile_id)
    named = attributes.get("time_zone") or attributes.get("timezone")
    zone = policy.zone_of(named if isinstance(named, str) else None, attributes.get("country"))
    try:
        return ZoneInfo(zone).key if zone else policy.default_time_zone
    except (ZoneInfoNotFoundError, ValueError):
        return policy.default_time_zone


def candidates(
    conn: Conn,
    *,
    profile_id: int,
    template: str,
    purpose: str,
    address: Callable[[Conn, int, str], str],
    configured: Collection[str] | None,
) -> list[str]:
    """Channels the message can go on: configured, with the template, an address, and (for
    marketing) a granted consent and no suppression; a hard bounce rules a channel out always."""
    members = id_repo.member_profile_ids(conn, profile_id)
    consents = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT ON (channel) channel FROM crm_consents WHERE profile_id = ANY(%s)"
            " AND purpose = 'marketing' AND status = 'granted' ORDER BY channel, updated_at DESC",
            (members,),
        ).fetchall()
    }
    suppressed = dict(
        conn.execute(
            "SELECT channel, max(reason) FILTER (WHERE reason = 'hard_bounce')"
            " FROM crm_msg_suppressions WHERE profile_id = ANY(%s) GROUP BY channel",
            (members,),
        ).fetchall()
    )
    out = []
    for ch in CHANNELS:
        if configured is not None and ch not in configured:
            continue
        if ch in suppressed and (purpose == "marketing" or suppressed[ch] == "hard_bounce"):
            continue
        if purpose == "marketing" and ch in CONSENT_CHANNELS and ch not in consents:
            continue
        if not (repo.template_variants(conn, template, ch) or BUILTIN.get((template, ch))):
            continue
        try:
            address(conn, profile_id, ch)
        except MessagingInvalidInputError:
            continue
        out.append(ch)
    return out


# --- the choice --------------------------------------------------------------------------------


def plan(
    conn: Conn,
    *,
    profile_id: int,
    channel: str | None,
    template: str,
    purpose: str,
    best_time: bool,
    address: Callable[[Conn, int, str], str],
    configured: Collection[str] | None = None,
    policy: PolicyConfig | None = None,
    config: BanditConfig = DEFAULT,
    now: datetime | None = None,
    rng: np.random.Generator | None = None,
) -> Plan:
    """The channel (the given one, else a Thompson pick among the candidates) and, when
    `best_time`, a Thompson pick of the local hour bucket as `not_before`."""
    if channel is not None and not best_time:
        return Plan(channel=channel)
    now = now or _now(conn)
    rng = rng or np.random.default_rng()
    policy = policy or PolicyConfig()
    settle(conn, profile_id, now=now, config=config)
    channel_pick: Pick | None = None
    cands: tuple[str, ...] = ()
    if channel is None:
        cands = tuple(
            candidates(
                conn, profile_id=profile_id, template=template, purpose=purpose,
                address=address, configured=configured,
            )
        )  # fmt: skip
        if not cands:
            raise MessagingInvalidInputError(
                f"no channel for customer {profile_id}: none has template {template!r}, an"
                " address" + (" and a granted marketing consent" if purpose == "marketing" else "")
            )
        channel_pick = thompson(arms(conn, profile_id, "channel", cands, config), rng)
        channel = channel_pick.name
    if not best_time:
        return Plan(channel=channel, channel_pick=channel_pick, candidates=cands)
    zone = zone_for(conn, profile_id, policy)
    buckets = tuple(str(h) for h in config.hour_buckets)
    hour_pick = thompson(arms(conn, profile_id, "hour", buckets, config), rng)
    bucket = int(hour_pick.name)
    return Plan(
        channel=channel,
        not_before=next_slot(now, ZoneInfo(zone), bucket, config.bucket_h),
        hour_bucket=bucket,
        time_zone=zone,
        channel_pick=channel_pick,
        hour_pick=hour_pick,
        candidates=cands,
    )


def next_slot(now: datetime, zone: ZoneInfo, start_hour: int, bucket_h: int) -> datetime | None:
    """The next local start of the bucket in `now`'s offset (None: `now` is inside it)."""
    local = now.astimezone(zone)
    if (local.hour - start_hour) % 24 < bucket_h:
        return None
    start = datetime.combine(local.date(), time(start_hour), tzinfo=zone)
    if start <= local:
        start = datetime.combine(local.date() + timedelta(days=1), time(start_hour), tzinfo=zone)
    return start.astimezone(now.tzinfo)


def arms(
    conn: Conn, profile_id: int, dimension: Dimension, names: Sequence[str], config: BanditConfig
) -> list[Arm]:
    """Each named arm with its segment prior and the person's own counts."""
    own = _own_counts(conn, profile_id, dimension)
    pooled = _segment_counts(conn, profile_id, dimension)
    return [
        Arm(
            name=n,
            prior=segment_prior(pooled.get(n, Counts()), weight=config.prior_weight),
            counts=own.get(n, Counts()),
        )
        for n in names
    ]


def _own_counts(conn: Conn, profile_id: int, dimension: Dimension) -> dict[str, Counts]:
    rows = conn.execute(
        "SELECT arm, sum(trials), sum(successes) FROM crm_msg_bandit_arms"
        " WHERE profile_id = ANY(%s) AND dimension = %s GROUP BY arm",
        (id_repo.member_profile_ids(conn, profile_id), dimension),
    ).fetchall()
    return {r[0]: Counts(int(r[1]), int(r[2])) for r in rows}


def _segment_counts(conn: Conn, profile_id: int, dimension: Dimension) -> dict[str, Counts]:
    rows = conn.execute(
        "SELECT arm, sum(trials), sum(successes) FROM crm_msg_bandit_segment_arms"
        " WHERE dimension = %s AND segment_id IN (SELECT segment_id FROM crm_segment_members"
        "  WHERE profile_id = %s AND exited_at IS NULL) GROUP BY arm",
        (dimension, profile_id),
    ).fetchall()
    return {r[0]: Counts(int(r[1]), int(r[2])) for r in rows}


def segments_of(conn: Conn, profile_id: int) -> list[int]:
    """The segments a person is in now."""
    rows = conn.execute(
        "SELECT segment_id FROM crm_segment_members WHERE profile_id = %s AND exited_at IS NULL"
        " ORDER BY segment_id",
        (profile_id,),
    ).fetchall()
    return [int(r[0]) for r in rows]


# --- trials and outcomes -----------------------------------------------------------------------


def record(
    conn: Conn,
    *,
    message_id: int,
    profile_id: int,
    purpose: str,
    chosen: Plan,
    policy: PolicyConfig | None = None,
    config: BanditConfig = DEFAULT,
    now: datetime | None = None,
) -> None:
    """Store a new marketing message as a trial, and the bandit's choice as a decision."""
    if purpose != "marketing":
        return
    now = now or _now(conn)
    zone = chosen.time_zone or zone_for(conn, profile_id, policy or PolicyConfig())
    conn.execute(
        "INSERT INTO crm_msg_bandit_trials (message_id, profile_id, channel, picked_channel,"
        " hour_bucket, time_zone, window_h, posterior, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING",
        (
            message_id, profile_id, chosen.channel, chosen.channel_pick is not None,
            chosen.hour_bucket, zone, config.window_h, Jsonb(chosen.posterior()), now,
        ),
    )  # fmt: skip
    if chosen.channel_pick is not None or chosen.hour_pick is not None:
        repo.record_decision(conn, message_id, "choose", chosen.reason(), now)
        if chosen.channel_pick is not None:
            CHOICES.labels("channel", chosen.channel).inc()
        if chosen.hour_bucket is not None:
            CHOICES.labels("hour", str(chosen.hour_bucket)).inc()
        log.info(
            "bandit choice",
            extra={"message_id": message_id, "profile_id": profile_id, "channel": chosen.channel},
        )


def record_outcome(
    conn: Conn,
    message_id: int,
    outcome: str,
    *,
    at: datetime | None = None,
    config: BanditConfig = DEFAULT,
) -> bool:
    """An engagement with a message (opened, clicked, replied); whether it counted now (False:
    not a bandit trial, already settled, or outside the outcome window)."""
    if outcome not in OUTCOMES:
        raise MessagingInvalidInputError(f"unknown outcome {outcome!r}: one of {sorted(OUTCOMES)}")
    at = at or _now(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT t.message_id, t.time_zone, t.window_h, o.sent_at FROM crm_msg_bandit_trials t"
            " JOIN crm_message_outbox o ON o.id = t.message_id"
            " WHERE t.message_id = %s AND t.settled_at IS NULL",
            (message_id,),
        ).fetchone()
    if row is None:
        return False
    sent = row["sent_at"]
    if sent is not None and at > sent + timedelta(hours=row["window_h"]):
        return False
    # an engagement proves delivery even if the send's own commit is not visible yet
    return _settle_one(conn, row, "engaged", at, config, event=outcome)


def settle(conn: Conn, profile_id: int, *, now: datetime, config: BanditConfig = DEFAULT) -> int:
    """Settle a person's trials that can be settled now; how many settled."""
    members = id_repo.member_profile_ids(conn, profile_id)
    with conn.cursor(row_factory=dict_row) as cur:
        open_trials = cur.execute(
            "SELECT t.message_id, t.time_zone, t.window_h, o.status, o.sent_at"
            " FROM crm_msg_bandit_trials t JOIN crm_message_outbox o ON o.id = t.message_id"
            " WHERE t.profile_id = ANY(%s) AND t.settled_at IS NULL ORDER BY t.message_id",
            (members,),
        ).fetchall()
    if not open_trials:
        return 0
    engaged = _engagements(conn, members, open_trials, config)
    done = 0
    for t in open_trials:
        hit = engaged.get(t["message_id"])
        deadline = t["sent_at"] + timedelta(hours=t["window_h"]) if t["sent_at"] else None
        if t["status"] in ("skipped", "failed", "uncertain"):
            done += _settle_one(conn, t, "not_sent", now, config)
        elif deadline is not None and hit is not None and hit[0] <= deadline:
            done += _settle_one(conn, t, "engaged", hit[0], config, event=hit[1])
        elif deadline is not None and now >= deadline:
            done += _settle_one(conn, t, "no_engagement", now, config)
    return done


def settle_due(
    conn: Conn, *, now: datetime, limit: int = 500, config: BanditConfig = DEFAULT
) -> int:
    """Settle the trials of up to `limit` people whose oldest open trial's window has passed
    (for a periodic task: the segment priors then include people not messaged again)."""
    # only people with a trial that settles now, so a message deferred for weeks never holds
    # a slot of the batch (created_at bounds sent_at from below: the index narrows the scan)
    rows = conn.execute(
        "SELECT DISTINCT t.profile_id FROM crm_msg_bandit_trials t"
        " JOIN crm_message_outbox o ON o.id = t.message_id"
        " WHERE t.settled_at IS NULL AND (o.status IN ('skipped', 'failed', 'uncertain')"
        "  OR (t.created_at < %(now)s - make_interval(hours => t.window_h)"
        "   AND o.sent_at < %(now)s - make_interval(hours => t.window_h)))"
        " LIMIT %(limit)s",
        {"now": now, "limit": limit},
    ).fetchall()
    return sum(settle(conn, int(r[0]), now=now, config=config) for r in rows)


def _engagements(
    conn: Conn, members: list[int], trials: list[dict[str, Any]], config: BanditConfig
) -> dict[int, tuple[datetime, str]]:
    """The first outcome event per open trial, from the behavioural event stream."""
    sent = [t["sent_at"] for t in trials if t["sent_at"] is not None]
    if not sent:
        return {}
    rows = conn.execute(
        "SELECT (properties->>'message_id')::bigint, min(occurred_at),"
        " (array_agg(event ORDER BY occurred_at))[1] FROM crm_events"
        " WHERE profile_id = ANY(%s) AND event = ANY(%s) AND occurred_at >= %s"
        " AND properties->>'message_id' = ANY(%s) GROUP BY 1",
        (
            members, list(config.outcome_events), min(sent),
            [str(t["message_id"]) for t in trials],
        ),
    ).fetchall()  # fmt: skip
    return {int(r[0]): (r[1], str(r[2]).removeprefix("message.")) for r in rows}


def _settle_one(
    conn: Conn,
    trial: dict[str, Any],
    outcome: str,
    at: datetime,
    config: BanditConfig,
    *,
    event: str | None = None,
) -> bool:
    """Settle one trial once (a concurrent settler finds it settled) and count it."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE crm_msg_bandit_trials t SET outcome = %s, outcome_event = %s, settled_at = %s"
            " FROM crm_message_outbox o WHERE t.message_id = %s AND o.id = t.message_id"
            " AND t.settled_at IS NULL RETURNING t.profile_id, t.channel, t.time_zone, o.sent_at",
            (outcome, event, at, trial["message_id"]),
        ).fetchone()
    if row is None:
        return False
    SETTLED.labels(outcome).inc()
    if outcome == "not_sent":
        return True
    success = int(outcome == "engaged")
    sent_local = (row["sent_at"] or at).astimezone(_zone(row["time_zone"]))
    bucket = config.bucket_of(sent_local.hour)
    if bucket is not None:
        conn.execute(
            "UPDATE crm_msg_bandit_trials SET settled_bucket = %s WHERE message_id = %s",
            (bucket, trial["message_id"]),
        )
    bumps: list[tuple[Dimension, str]] = [("channel", row["channel"])]
    if bucket is not None:
        bumps.append(("hour", str(bucket)))
    for dimension, arm in bumps:
        _bump(conn, row["profile_id"], dimension, arm, success)
    return True


def _bump(conn: Conn, profile_id: int, dimension: Dimension, arm: str, success: int) -> None:
    conn.execute(
        "INSERT INTO crm_msg_bandit_arms (profile_id, dimension, arm, trials, successes)"
        " VALUES (%s, %s, %s, 1, %s) ON CONFLICT (profile_id, dimension, arm) DO UPDATE SET"
        " trials = crm_msg_bandit_arms.trials + 1,"
        " successes = crm_msg_bandit_arms.successes + EXCLUDED.successes, updated_at = now()",
        (profile_id, dimension, arm, success),
    )
    conn.execute(
        "INSERT INTO crm_msg_bandit_segment_arms (segment_id, dimension, arm, trials, successes)"
        " SELECT segment_id, %s, %s, 1, %s FROM crm_segment_members"
        " WHERE profile_id = %s AND exited_at IS NULL"
        " ON CONFLICT (segment_id, dimension, arm) DO UPDATE SET"
        " trials = crm_msg_bandit_segment_arms.trials + 1,"
        " successes = crm_msg_bandit_segment_arms.successes + EXCLUDED.successes,"
        " updated_at = now()",
        (dimension, arm, success, profile_id),
    )


# --- the preferences view ----------------------------------------------------------------------


def preferences(
    conn: Conn,
    profile_id: int,
    *,
    policy: PolicyConfig | None = None,
    config: BanditConfig = DEFAULT,
    now: datetime | None = None,
) -> Preferences:
    """The person's posterior per channel and hour bucket (their due trials settled first)."""
    settle(conn, profile_id, now=now or _now(conn), config=config)
    views: dict[Dimension, list[ArmView]] = {}
    names: dict[Dimension, tuple[str, ...]] = {
        "channel": CHANNELS,
        "hour": tuple(str(h) for h in config.hour_buckets),
    }
    for dimension, arm_names in names.items():
        views[dimension] = [
            ArmView(a.name, a.counts.trials, a.counts.successes, a.prior, a.posterior)
            for a in arms(conn, profile_id, dimension, arm_names, config)
        ]
    return Preferences(
        profile_id=profile_id,
        time_zone=zone_for(conn, profile_id, policy or PolicyConfig()),
        window_h=config.window_h,
        segments=segments_of(conn, profile_id),
        channels=views["channel"],
        hours=views["hour"],
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _now(conn: Conn) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]
