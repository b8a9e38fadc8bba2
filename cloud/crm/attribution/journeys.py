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
ORDER BY profile_id, at, kind
"""


def currencies(conn: Conn, start: datetime, end: datetime) -> list[str]:
    """Currencies of the sales in the period, most sales first."""
    rows = conn.execute(
        "SELECT currency FROM crm_transactions WHERE occurred_at >= %s AND occurred_at < %s"
        " AND kind = 'sale' AND reversed_at IS NULL GROUP BY currency ORDER BY count(*) DESC",
        (start, end),
    ).fetchall()
    return [str(r[0]) for r in rows]


def stream(conn: Conn, period: Period, by: Dimension) -> Iterator[Journey]:
    """Every journey of the period, converting or not, one person at a time."""
    params = {
        "by": by.value,
        "touch_from": period.start - period.lookback,
        "start": period.start,
        "end": period.end,
        "channels": list(TOUCH_CHANNELS),
        "currency": period.currency,
    }
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
