"""Journeys from the CRM's tables: conversions (POS and online sales, not reversed) and the
touches before them (touchpoints and sent messages), streamed in one ordered pass.

Each person's touches and conversions are read in time order. A conversion's journey is the
touches within the lookback window before it that no earlier conversion used; touches that no
conversion followed within the window make a non-converting journey (the Markov and Shapley
models learn from them). A conversion with no touch is "direct": counted, never attributed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import groupby
from typing import Any

import psycopg

from cloud.crm.attribution.models import Journey, Touch

Conn = psycopg.Connection[Any]

#: Touchpoint channels that are marketing touches ('pos' is the purchase itself).
TOUCH_CHANNELS = ("web", "app", "email", "sms", "support", "store_visit")


class Dimension(StrEnum):
    """What a touch is credited to."""

    CHANNEL = "channel"
    CAMPAIGN = "campaign"


@dataclass(frozen=True)
class Period:
    """Conversions in [start, end); touches from `lookback` before start."""

    start: datetime
    end: datetime
    lookback: timedelta
    currency: str


# One ordered stream: kind 0 = touch (key), 1 = conversion (value). Messages count as touches
# once sent; their campaign is the messaging campaign's name, else the template's.
_STREAM = """
SELECT profile_id, at, kind, key, value FROM (
  SELECT t.profile_id, t.occurred_at AS at, 0 AS kind,
         CASE WHEN %(by)s = 'channel' THEN t.channel
              ELSE coalesce(t.properties ->> 'campaign', t.properties ->> 'utm_campaign',
                            '(none)') END AS key,
         NULL::numeric AS value
    FROM crm_touchpoints t
   WHERE t.occurred_at >= %(touch_from)s AND t.occurred_at < %(end)s
     AND t.channel = ANY(%(channels)s)
  UNION ALL
  SELECT m.profile_id, m.sent_at, 0,
         CASE WHEN %(by)s = 'channel' THEN m.channel ELSE coalesce(c.name, m.template) END,
         NULL
    FROM crm_message_outbox m LEFT JOIN crm_msg_campaigns c ON c.id = m.campaign_id
   WHERE m.sent_at >= %(touch_from)s AND m.sent_at < %(end)s AND m.purpose = 'marketing'
  UNION ALL
  SELECT x.profile_id, x.occurred_at, 1, NULL, x.total_amount
    FROM crm_transactions x
   WHERE x.occurred_at >= %(start)s AND x.occurred_at < %(end)s
     AND x.kind = 'sale' AND x.reversed_at IS NULL AND x.currency = %(currency)s
) s
ORDER BY profile_id, at, kind, key
"""

# The same journeys, built and counted in SQL (one pass of window functions): rows are either
# ('path', keys, converted, journeys, value) for each distinct path, or ('decay', {key}, true,
# conversions credited, value credited) for the time-decay model, which needs each touch's age.
# Touches before a person's k-th conversion form block k-1; a gap longer than the lookback
# starts a new session within a block; a touch belongs to the conversion that ends its block
# when it lies within the lookback; the rest of each session is a journey without conversion.
_AGGREGATE = """
WITH ev AS ({events}),
o AS MATERIALIZED (
  SELECT profile_id, at, kind, key, value,
         count(*) FILTER (WHERE kind = 1) OVER w AS conv_upto,
         CASE WHEN at - lag(at) OVER w > %(lookback)s THEN 1 ELSE 0 END AS brk
    FROM ev
  WINDOW w AS (PARTITION BY profile_id ORDER BY at, kind, key ROWS UNBOUNDED PRECEDING)
),
s AS (
  -- a session number that grows at every gap longer than the lookback (counted over all of the
  -- person's events: only its changes within one block matter)
  SELECT *, sum(brk) OVER (PARTITION BY profile_id ORDER BY at, kind, key
                           ROWS UNBOUNDED PRECEDING) AS session
    FROM o
),
c AS (SELECT profile_id, conv_upto AS no, at AS conv_at, value FROM s WHERE kind = 1),
ta AS (
  SELECT t.profile_id, t.at, t.key, t.conv_upto AS block, t.session, c.conv_at, c.value
    FROM s t LEFT JOIN c ON c.profile_id = t.profile_id AND c.no = t.conv_upto + 1
                        AND c.conv_at - t.at <= %(lookback)s
   WHERE t.kind = 0
),
conv_paths AS (
  SELECT coalesce(array_agg(ta.key ORDER BY ta.at, ta.key)
                  FILTER (WHERE ta.key IS NOT NULL), '{{}}') AS path, c.value
    FROM c LEFT JOIN ta ON ta.profile_id = c.profile_id AND ta.block + 1 = c.no
                       AND ta.conv_at IS NOT NULL
   GROUP BY c.profile_id, c.no, c.value
),
decay AS (
  SELECT key, value, w / sum(w) OVER (PARTITION BY profile_id, block) AS share
    FROM (SELECT key, value, profile_id, block,
                 power(2.0, -extract(epoch FROM conv_at - at) / 86400.0 / %(half_life)s) AS w
            FROM ta WHERE conv_at IS NOT NULL) x
)
SELECT 'path', path, true, count(*), sum(value) FROM conv_paths GROUP BY path
UNION ALL
SELECT 'path', path, false, count(*), 0 FROM (
  SELECT array_agg(key ORDER BY at, key) AS path FROM ta WHERE conv_at IS NULL
   GROUP BY profile_id, block, session) n GROUP BY path
UNION ALL
SELECT 'decay', ARRAY[key], true, sum(share), sum(share * value) FROM decay GROUP BY key
"""


@dataclass(frozen=True)
class Aggregate:
    """Distinct paths with how many journeys took each (`weight`) and their summed value, and
    the time-decay model's credits (conversions, value) by key."""

    paths: list[Journey]
    decay_conversions: dict[str, float]
    decay_value: dict[str, float]


def _params(period: Period, by: Dimension) -> dict[str, Any]:
    return {
        "by": by.value,
        "touch_from": period.start - period.lookback,
        "start": period.start,
        "end": period.end,
        "channels": list(TOUCH_CHANNELS),
        "currency": period.currency,
        "lookback": period.lookback,
    }


def aggregate(conn: Conn, period: Period, by: Dimension, half_life_days: float) -> Aggregate:
    """Every journey of the period, grouped by path in SQL (see _AGGREGATE)."""
    events = _STREAM.rpartition("ORDER BY")[0]
    query = _AGGREGATE.format(events=events)
    params = {**_params(period, by), "half_life": half_life_days}
    # the window sorts spill to disk at the default 4 MB; this transaction may take more
    conn.execute("SET LOCAL work_mem = '256MB'")
    paths: list[Journey] = []
    decay_n: dict[str, float] = {}
    decay_v: dict[str, float] = {}
    epoch = period.start
    for kind, keys, converted, n, value in conn.execute(query, params):
        if kind == "decay":
            decay_n[keys[0]] = float(n)
            decay_v[keys[0]] = float(value)
            continue
        touches = tuple(Touch(str(k), epoch) for k in keys)
        paths.append(
            Journey(touches, bool(converted), float(value) if converted else 0.0, None, float(n))
        )
    return Aggregate(paths, decay_n, decay_v)


def currencies(conn: Conn, start: datetime, end: datetime) -> list[str]:
    """Currencies of the sales in the period, most sales first."""
    rows = conn.execute(
        "SELECT currency FROM crm_transactions WHERE occurred_at >= %s AND occurred_at < %s"
        " AND kind = 'sale' AND reversed_at IS NULL GROUP BY currency ORDER BY count(*) DESC",
        (start, end),
    ).fetchall()
    return [str(r[0]) for r in rows]


def stream(conn: Conn, period: Period, by: Dimension) -> Iterator[Journey]:
    """Every journey of the period, converting or not, one person at a time, built in Python
    (the reference `aggregate` is tested against)."""
    params = _params(period, by)
    with conn.cursor(name="attribution_stream") as cur:
        cur.itersize = 20_000
        cur.execute(_STREAM, params)
        for _, rows in groupby(cur, key=lambda r: r[0]):
            yield from person_journeys(((r[1], r[2], r[3], r[4]) for r in rows), period.lookback)


def person_journeys(
    events: Iterator[tuple[datetime, int, str | None, Decimal | None]], lookback: timedelta
) -> Iterator[Journey]:
    """One person's journeys from their (time, kind, key, value) events in time order."""
    pending: list[Touch] = []
    for at, kind, key, value in events:
        if kind == 0:
            if pending and at - pending[-1].at > lookback:
                yield Journey(tuple(pending), converted=False, value=0.0)  # went quiet
                pending = []
            pending.append(Touch(str(key), at))
            continue
        used = tuple(t for t in pending if at - t.at <= lookback)
        stale = tuple(t for t in pending if at - t.at > lookback)
        if stale:
            yield Journey(stale, converted=False, value=0.0)
        yield Journey(used, converted=True, value=float(value or 0), converted_at=at)
        pending = []
    if pending:
        yield Journey(tuple(pending), converted=False, value=0.0)
