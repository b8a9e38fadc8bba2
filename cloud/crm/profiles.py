"""The golden record: a 360-degree view of one person."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from cloud.crm.consent import live_profile
from cloud.db.repositories import crm_consent as consent_repo
from cloud.db.repositories import crm_events as ev_repo
from cloud.db.repositories import crm_identity as repo
from cloud.db.repositories import crm_loyalty as loyalty_repo

Conn = psycopg.Connection[Any]


def golden_record(
    conn: Conn, *, profile_id: int, recent: int = 20, now: datetime | None = None
) -> dict[str, Any]:
    """Identifiers, attributes, consents, loyalty, recent touchpoints and purchases, lifecycle
    and scores of the person `profile_id` is (or was merged into)."""
    when = now or datetime.now(UTC)
    pid = live_profile(conn, profile_id)
    profile = repo.get_profile(conn, pid)
    assert profile is not None
    members = repo.member_profile_ids(conn, pid)
    accounts = [
        {
            "id": a["id"],
            "member_number": a["member_number"],
            "tier": a["tier"],
            "tier_period_end": a["tier_period_end"],
            "status": a["status"],
            "balance": loyalty_repo.balance(conn, int(a["id"]), when),
        }
        for a in loyalty_repo.accounts_of_profiles(conn, members)
    ]
    return {
        "id": pid,
        "requested_id": profile_id,
        "merged_ids": [m for m in members if m != pid],
        "identified": profile["identified"],
        "attributes": profile["attributes"],
        "lifecycle_stage": profile["lifecycle_stage"],
        "identifiers": repo.profile_identifiers(conn, pid),
        "consents": consent_repo.consents_of(conn, members),
        "loyalty_accounts": accounts,
        "recent_touchpoints": ev_repo.profile_touchpoints(conn, pid, recent),
        "recent_transactions": ev_repo.profile_transactions(conn, pid, recent),
        "scores": consent_repo.scores_of(conn, pid),
        "created_at": profile["created_at"],
        "updated_at": profile["updated_at"],
    }
