"""Where the churn model's events come from: the CRM's transactions and touchpoints tables.

Each source is read incrementally by its bigint identity id (`WHERE id > watermark`). Profile ids
are folded through `crm_resolve_profile()` so purchases of merged profiles land on the survivor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from cloud.ml.events import Engagement, EngagementKind, Event, Purchase, Visit

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class SourcedEvent:
    """An event with the source row it came from (for watermarks and the dead-letter table)."""

    source: str
    row_id: int
    event: Event | None
    payload: dict[str, Any]
    error: str | None = None


class EventSource(Protocol):
    """An incrementally readable stream of customer events."""

    name: str

    def fetch(self, conn: Conn, *, after_id: int, limit: int) -> list[SourcedEvent]:
        """Rows with id > after_id, in id order, at most `limit`."""


class CrmTransactionSource:
    """POS transactions from `crm_transactions` (reversed purchases are skipped as invalid)."""

    name = "crm_transactions"

    def fetch(self, conn: Conn, *, after_id: int, limit: int) -> list[SourcedEvent]:
        """Transactions with id > after_id."""
        rows = conn.execute(
            "SELECT id, crm_resolve_profile(profile_id)::text, store_id, occurred_at,"
            " total_amount::float8, kind, reversed_at IS NOT NULL"
            " FROM crm_transactions WHERE id > %s ORDER BY id LIMIT %s",
            (after_id, limit),
        ).fetchall()
        out: list[SourcedEvent] = []
        for rid, customer, store, at, amount, kind, reversed_ in rows:
            payload = {
                "customer_id": customer,
                "store_id": store,
                "amount": amount,
                "kind": kind,
                "occurred_at": at.isoformat(),
            }
            error = "the purchase was reversed" if reversed_ else None
            event = Purchase(customer or "", at, amount, store, source_id=f"{self.name}:{rid}")
            out.append(SourcedEvent(self.name, rid, event, payload, error))
        return out


_ENGAGEMENT = {
    "sent": EngagementKind.SENT,
    "delivered": EngagementKind.SENT,
    "open": EngagementKind.OPENED,
    "opened": EngagementKind.OPENED,
    "click": EngagementKind.CLICKED,
    "clicked": EngagementKind.CLICKED,
}


class CrmTouchpointSource:
    """Loyalty check-ins (channel store_visit) and message engagement from `crm_touchpoints`."""

    name = "crm_touchpoints"

    def fetch(self, conn: Conn, *, after_id: int, limit: int) -> list[SourcedEvent]:
        """Touchpoints with id > after_id; other channels/events come back with event None."""
        rows = conn.execute(
            "SELECT id, crm_resolve_profile(profile_id)::text, channel, event, store_id,"
            " occurred_at FROM crm_touchpoints WHERE id > %s ORDER BY id LIMIT %s",
            (after_id, limit),
        ).fetchall()
        out: list[SourcedEvent] = []
        for rid, customer, channel, name, store, at in rows:
            sid = f"{self.name}:{rid}"
            event: Event | None = None
            if channel == "store_visit":
                event = Visit(customer or "", at, store, source_id=sid)
            elif channel in ("email", "sms", "app") and name.lower() in _ENGAGEMENT:
                event = Engagement(customer or "", at, _ENGAGEMENT[name.lower()], source_id=sid)
            payload = {
                "customer_id": customer,
                "channel": channel,
                "event": name,
                "occurred_at": at.isoformat(),
            }
            out.append(SourcedEvent(self.name, rid, event, payload))
        return out


def fetch_merges(
    conn: Conn, *, after_id: int, limit: int = 1000
) -> list[tuple[int, str, str, bool]]:
    """CRM identity merges with id > after_id: (id, survivor, absorbed, undone)."""
    rows = conn.execute(
        "SELECT id, survivor_id::text, absorbed_id::text, undone_at IS NOT NULL FROM crm_merges"
        " WHERE id > %s ORDER BY id LIMIT %s",
        (after_id, limit),
    ).fetchall()
    return [(int(r[0]), r[1], r[2], bool(r[3])) for r in rows]
