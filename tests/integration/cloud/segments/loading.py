"""Loading a generated world into the database (profiles, then events, purchases, consents
and loyalty accounts)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.integration.cloud.segments.world import NOW, World


def load_profiles(conn: psycopg.Connection[Any], world: World) -> None:
    """Insert the world's profiles (with their ids) and one source record each."""
    for p in world.profiles:
        conn.execute(
            "INSERT INTO crm_profiles (id, attributes, lifecycle_stage) OVERRIDING SYSTEM VALUE"
            " VALUES (%s, %s, %s)",
            (p.id, Jsonb(p.attributes), p.stage),
        )
        conn.execute("INSERT INTO crm_records (profile_id, source) VALUES (%s, 'test')", (p.id,))
    for p in world.profiles:
        if p.merged_into is not None:
            conn.execute(
                "UPDATE crm_profiles SET merged_into = %s WHERE id = %s", (p.merged_into, p.id)
            )


def load_activity(conn: psycopg.Connection[Any], world: World, *, half: int | None = None) -> None:
    """Insert the world's events, purchases, scores, consents and accounts; `half` 1 inserts
    the first half of the events and purchases only, `half` 2 the rest."""
    part = slice(None)
    if half is not None:
        k = len(world.events) // 2, len(world.txs) // 2
        part = slice(0, k[0]) if half == 1 else slice(k[0], None)
    for e in world.events[part]:
        conn.execute(
            "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
            " profile_id, properties, store_id) VALUES (%s, %s, 'seg', gen_random_uuid()::text,"
            " 'track', %s, %s, %s, %s)",
            (e["at"], NOW, e["event"], e["profile_id"], Jsonb(e["properties"]), e["store_id"]),
        )
    if half is not None:
        k2 = len(world.txs) // 2
        part = slice(0, k2) if half == 1 else slice(k2, None)
    for t in world.txs[part]:
        conn.execute(
            "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id,"
            " occurred_at, currency, total_amount, kind, reversed_at)"
            " SELECT %s, (SELECT min(id) FROM crm_records WHERE profile_id = %s), %s,"
            " gen_random_uuid()::text, %s, 'EUR', %s, %s, %s",
            (
                t["profile_id"],
                t["profile_id"],
                t["store_id"],
                t["at"],
                t["amount"],
                t["kind"],
                NOW if t["reversed"] else None,
            ),
        )
    if half == 2:
        return _load_rest(conn, world)
    # scores come first: they reach segments through the sweep, not incrementally
    # (docs/segments.md), so the incremental evaluator is given them before the changes
    for pid, s in world.scores.items():
        conn.execute(
            "INSERT INTO ml_customer_scores (customer_id, segment, churn_probability, clv,"
            " engagement, health_score, risk_value, model_version, as_of)"
            " VALUES (%s, 'x', %s, %s, %s, %s, 0, 1, %s)",
            (str(pid), s["churn_probability"], s["clv"], s["engagement"], s["health_score"], NOW),
        )
    if half == 1:
        return None
    return _load_rest(conn, world)


def _load_rest(conn: psycopg.Connection[Any], world: World) -> None:
    for c in world.consents:
        conn.execute(
            "INSERT INTO crm_consents (profile_id, channel, purpose, status, source, updated_at)"
            " VALUES (%s, 'email', 'marketing', %s, 'test', %s)",
            (c["profile_id"], c["status"], c["at"]),
        )
    for a in world.accounts:
        conn.execute(
            "INSERT INTO loyalty_accounts (profile_id, member_number, tier, tier_period_end,"
            " status) VALUES (%s, gen_random_uuid()::text, %s, %s, %s)",
            (a["profile_id"], a["tier"], NOW, a["status"]),
        )
