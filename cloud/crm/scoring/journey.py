"""Lifecycle prediction and journey analytics over the logged lifecycle transitions.

- `NextStageModel`: P(next stage within `window_days` | current stage, recent activity bucket),
  counted from the transition log (every stint at a stage that is at least `window_days` old,
  or already left, is one sample: the stage it moved to within the window, or `stay`), with
  add-one smoothing backed off to the stage's overall counts when a bucket has few samples.
- `health`: the journey health score (engagement, recency, momentum), 0-100 each.
- `flows`, `paths_to_purchase`, `drop_off`: stage-to-stage flows (Sankey nodes and links),
  touchpoint channel paths before a first purchase, stalled profiles by stage and channel.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from cloud.crm.lifecycle import STAGES

Conn = psycopg.Connection[Any]
STAY = "stay"
START = "(start)"
#: Activity buckets: touchpoints + events in the 30 days before (0, 1-3, 4+).
BUCKETS = ("none", "low", "high")


def bucket(activity: int) -> str:
    """The activity bucket of a count of touchpoints and events in 30 days."""
    return "none" if activity <= 0 else "low" if activity <= 3 else "high"


def outcomes(stage: str | None) -> list[str]:
    """The possible next stages from `stage` (forward only) plus `stay`."""
    start = STAGES.index(stage) + 1 if stage in STAGES else 0
    return [*STAGES[start:], STAY]


@dataclass
class NextStageModel:
    """Smoothed conditional frequencies of the next stage."""

    by_bucket: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    by_stage: dict[str, Counter[str]] = field(default_factory=dict)
    min_bucket: int = 20

    def learn(self, stage: str | None, activity: int, nxt: str) -> None:
        """Count one sample."""
        s = stage or START
        self.by_bucket.setdefault((s, bucket(activity)), Counter())[nxt] += 1
        self.by_stage.setdefault(s, Counter())[nxt] += 1

    def predict(self, stage: str | None, activity: int) -> dict[str, float]:
        """Probability of each outcome (they sum to 1)."""
        s = stage or START
        options = outcomes(stage)
        counts = self.by_bucket.get((s, bucket(activity)), Counter())
        if sum(counts.values()) < self.min_bucket:
            counts = self.by_stage.get(s, Counter())
        total = sum(counts[o] for o in options) + len(options)
        return {o: round((counts[o] + 1) / total, 6) for o in options}

    def samples(self) -> int:
        """How many samples were counted."""
        return sum(sum(c.values()) for c in self.by_stage.values())


_SAMPLES = """
WITH t AS (
    SELECT profile_id, from_stage, to_stage, occurred_at,
        lead(to_stage) OVER w AS next_stage, lead(occurred_at) OVER w AS next_at
    FROM crm_lifecycle_transitions WINDOW w AS (PARTITION BY profile_id ORDER BY occurred_at, id)
)
SELECT t.to_stage,
    CASE WHEN t.next_at IS NOT NULL AND t.next_at <= t.occurred_at + %(w)s THEN t.next_stage
         ELSE 'stay' END,
    (SELECT count(*) FROM crm_touchpoints x WHERE x.profile_id = t.profile_id
        AND x.occurred_at > t.occurred_at - interval '30 days' AND x.occurred_at <= t.occurred_at)
  + (SELECT count(*) FROM crm_events e WHERE e.profile_id = t.profile_id
        AND e.occurred_at > t.occurred_at - interval '30 days' AND e.occurred_at <= t.occurred_at)
FROM t
WHERE t.occurred_at + %(w)s <= %(now)s OR t.next_at IS NOT NULL
"""


def fit_next_stage(conn: Conn, *, now: datetime, window_days: int = 30) -> NextStageModel:
    """Count the transition log into a model (stints younger than the window and not yet left
    are censored: their outcome is unknown)."""
    model = NextStageModel()
    w = timedelta(days=window_days)
    for stage, nxt, activity in conn.execute(_SAMPLES, {"w": w, "now": now}):
        model.learn(stage, int(activity), nxt)
    return model


def activity_of(conn: Conn, profile_id: int, now: datetime) -> int:
    """Touchpoints + events of the profile in the 30 days up to now."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM crm_touchpoints WHERE profile_id = %(p)s"
        " AND occurred_at > %(n)s - interval '30 days' AND occurred_at <= %(n)s)"
        " + (SELECT count(*) FROM crm_events WHERE profile_id = %(p)s"
        " AND occurred_at > %(n)s - interval '30 days' AND occurred_at <= %(n)s)",
        {"p": profile_id, "n": now},
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Health:
    """The journey health score and its three parts (0-100 each)."""

    score: float
    engagement: float
    recency: float
    momentum: float
    days_since_last: float | None


def health_from(recent: int, previous: int, days_since_last: float | None) -> Health:
    """Health from activity in the last 14 days, the 14 before, and days since the last one:
    engagement saturates with activity, recency halves every 14 days, momentum is 50 when
    activity is flat, above when it grows, below when it falls."""
    engagement = 100.0 * (1.0 - math.exp(-recent / 5.0))
    recency = 0.0 if days_since_last is None else 100.0 * 2.0 ** (-days_since_last / 14.0)
    momentum = 50.0 + 50.0 * (recent - previous) / (recent + previous + 1)
    score = 0.4 * engagement + 0.3 * recency + 0.3 * momentum
    return Health(
        round(score, 2), round(engagement, 2), round(recency, 2), round(momentum, 2),
        None if days_since_last is None else round(days_since_last, 3),
    )  # fmt: skip


def health(conn: Conn, profile_id: int, now: datetime) -> Health:
    """The journey health of a profile now (touchpoints, events and purchases count)."""
    row = conn.execute(
        "WITH a AS (SELECT occurred_at FROM crm_touchpoints WHERE profile_id = %(p)s"
        " UNION ALL SELECT occurred_at FROM crm_events WHERE profile_id = %(p)s"
        " UNION ALL SELECT occurred_at FROM crm_transactions WHERE profile_id = %(p)s)"
        " SELECT count(*) FILTER (WHERE occurred_at > %(n)s - interval '14 days'"
        " AND occurred_at <= %(n)s),"
        " count(*) FILTER (WHERE occurred_at > %(n)s - interval '28 days'"
        " AND occurred_at <= %(n)s - interval '14 days'),"
        " extract(epoch FROM %(n)s - max(occurred_at) FILTER (WHERE occurred_at <= %(n)s))"
        " / 86400.0 FROM a",
        {"p": profile_id, "n": now},
    ).fetchone()
    assert row is not None
    return health_from(int(row[0]), int(row[1]), None if row[2] is None else float(row[2]))


def flows(
    conn: Conn, *, start: datetime, end: datetime
) -> tuple[list[str], list[tuple[str, str, int]]]:
    """Sankey data: nodes and (source, target, profiles) links of transitions in [start, end)."""
    rows = conn.execute(
        "SELECT coalesce(from_stage, %s), to_stage, count(DISTINCT profile_id)"
        " FROM crm_lifecycle_transitions WHERE occurred_at >= %s AND occurred_at < %s"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        (START, start, end),
    ).fetchall()
    links = [(str(a), str(b), int(n)) for a, b, n in rows]
    seen = {x for a, b, _ in links for x in (a, b)}
    nodes = [n for n in (START, *STAGES) if n in seen]
    return nodes, links


def paths_to_purchase(
    conn: Conn, *, start: datetime, end: datetime, max_steps: int = 5, top: int = 20
) -> tuple[int, list[tuple[str, int]]]:
    """The channel paths (last `max_steps` touchpoint channels, repeats collapsed) before the
    first purchase of profiles whose first purchase fell in [start, end); (buyers, top paths)."""
    rows = conn.execute(
        "WITH first AS (SELECT profile_id, min(occurred_at) AS at FROM crm_transactions"
        " WHERE kind = 'sale' AND reversed_at IS NULL GROUP BY profile_id)"
        " SELECT f.profile_id, array_agg(t.channel ORDER BY t.occurred_at, t.id)"
        " FILTER (WHERE t.id IS NOT NULL)"
        " FROM first f LEFT JOIN crm_touchpoints t ON t.profile_id = f.profile_id"
        " AND t.occurred_at < f.at AND t.channel <> 'pos'"
        " WHERE f.at >= %s AND f.at < %s GROUP BY f.profile_id",
        (start, end),
    ).fetchall()
    counts: Counter[str] = Counter()
    for _, channels in rows:
        steps: list[str] = []
        for c in channels or []:
            if not steps or steps[-1] != c:
                steps.append(c)
        counts[" > ".join([*steps[-max_steps:], "purchase"])] += 1
    return len(rows), counts.most_common(top)


def drop_off(conn: Conn, *, now: datetime, idle_days: int = 30) -> list[tuple[str, str, int, int]]:
    """(stage, channel of the last touchpoint, stalled, at stage): profiles at a stage with no
    touchpoint, event or purchase in `idle_days`, by the channel they were last seen on."""
    rows = conn.execute(
        "WITH p AS (SELECT id, lifecycle_stage AS stage FROM crm_profiles"
        " WHERE merged_into IS NULL AND lifecycle_stage IS NOT NULL),"
        " last AS (SELECT DISTINCT ON (profile_id) profile_id, channel, occurred_at"
        " FROM crm_touchpoints ORDER BY profile_id, occurred_at DESC, id DESC),"
        " ev AS (SELECT profile_id, max(occurred_at) AS at FROM crm_events"
        " WHERE profile_id IS NOT NULL GROUP BY profile_id),"
        " tx AS (SELECT profile_id, max(occurred_at) AS at FROM crm_transactions"
        " GROUP BY profile_id)"
        " SELECT p.stage, coalesce(l.channel, 'none'),"
        " count(*) FILTER (WHERE greatest(l.occurred_at, ev.at, tx.at) IS NULL"
        " OR greatest(l.occurred_at, ev.at, tx.at) < %s - make_interval(days => %s)),"
        " count(*)"
        " FROM p LEFT JOIN last l ON l.profile_id = p.id LEFT JOIN ev ON ev.profile_id = p.id"
        " LEFT JOIN tx ON tx.profile_id = p.id GROUP BY 1, 2 ORDER BY 1, 2",
        (now, idle_days),
    ).fetchall()
    order = {s: i for i, s in enumerate(STAGES)}
    out = [(str(s), str(c), int(a), int(b)) for s, c, a, b in rows]
    return sorted(out, key=lambda r: (order.get(r[0], 99), r[1]))
