"""Lifecycle stages computed from touchpoints and purchases by documented rules.

Rules (first match from the top wins; stages only move forward):
- advocacy:      a retained customer with a `referral` or `review` event, or 5+ purchases
- retention:     purchases on 2+ distinct days
- purchase:      1+ purchase (not reversed)
- consideration: an `add_to_cart`/`wishlist` event, or 2+ engagement touchpoints
                 (store visit, product view, search, click, app open)
- awareness:     any touchpoint at all
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from cloud.db.repositories import crm_events as repo

Conn = psycopg.Connection[Any]
STAGES = ("awareness", "consideration", "purchase", "retention", "advocacy")


def compute_stage(facts: dict[str, int]) -> tuple[str | None, str]:
    """The stage the facts qualify for, with the rule that decided it."""
    purchases, days = facts.get("purchases", 0), facts.get("purchase_days", 0)
    if days >= 2 and (facts.get("advocacy_events", 0) >= 1 or purchases >= 5):
        return "advocacy", f"retained with {purchases} purchases and advocacy signals"
    if days >= 2:
        return "retention", f"purchases on {days} distinct days"
    if purchases >= 1:
        return "purchase", f"{purchases} purchase(s)"
    if facts.get("intents", 0) >= 1 or facts.get("engagements", 0) >= 2:
        return "consideration", (
            f"{facts.get('intents', 0)} intent events, {facts.get('engagements', 0)} engagements"
        )
    if facts.get("touchpoints", 0) >= 1:
        return "awareness", "first known touchpoint"
    return None, "no activity"


def transitions(current: str | None, target: str | None) -> list[tuple[str | None, str]]:
    """The forward steps from `current` to `target` (empty when not forward)."""
    if target is None:
        return []
    start = STAGES.index(current) + 1 if current in STAGES else 0
    end = STAGES.index(target)
    steps: list[tuple[str | None, str]] = []
    prev = current
    for stage in STAGES[start : end + 1]:
        steps.append((prev, stage))
        prev = stage
    return steps


def advance(
    conn: Conn, *, profile_id: int, current: str | None, store_id: str | None, when: datetime
) -> str | None:
    """Re-evaluate a profile after an event; logs every forward transition with its reason."""
    target, reason = compute_stage(repo.lifecycle_facts(conn, profile_id))
    steps = transitions(current, target)
    if not steps:
        return current
    repo.insert_transitions(
        conn, [(profile_id, frm, to, reason, store_id, when) for frm, to in steps]
    )
    repo.set_stage(conn, profile_id, steps[-1][1])
    return steps[-1][1]


def advance_profile(
    conn: Conn, *, profile_id: int, store_id: str | None, when: datetime
) -> str | None:
    """`advance` from the profile's stored stage."""
    current = repo.current_stage(conn, profile_id)
    return advance(conn, profile_id=profile_id, current=current, store_id=store_id, when=when)


def funnel(
    conn: Conn, *, start: datetime, end: datetime, store_id: str | None = None
) -> dict[str, Any]:
    """Profiles entering each stage in a period and the conversion between adjacent stages."""
    entered = repo.stage_entries(conn, start=start, end=end, store_id=store_id)
    counts = [entered.get(s, 0) for s in STAGES]
    conversion = {
        f"{a}->{b}": (round(cb / ca, 4) if ca else None)
        for (a, ca), (b, cb) in zip(
            zip(STAGES, counts, strict=True), zip(STAGES[1:], counts[1:], strict=True), strict=False
        )
    }
    return {"entered": dict(zip(STAGES, counts, strict=True)), "conversion": conversion}
