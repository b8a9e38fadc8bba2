"""The demo seed goes through the real services and is safe to run twice."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from cloud.crm.loyalty.program import LoyaltyProgram
from cloud.crm.seed import seed_demo_crm


def test_seed_demo_crm_is_deterministic_and_idempotent(
    fresh_database: Callable[..., str],
) -> None:
    url = fresh_database()
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO stores (id, name) VALUES ('demo-1', 'Demo 1'), ('demo-2', 'D2')")
        first = seed_demo_crm(
            conn, customers=15, stores=["demo-1", "demo-2"], program=LoyaltyProgram(), rng_seed=3
        )
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM crm_profiles WHERE merged_into IS NULL),"
            " (SELECT count(*) FROM crm_transactions), (SELECT count(*) FROM loyalty_accounts),"
            " (SELECT coalesce(sum(points), 0) FROM loyalty_entries)"
        ).fetchone()
        again = seed_demo_crm(
            conn, customers=15, stores=["demo-1", "demo-2"], program=LoyaltyProgram(), rng_seed=3
        )
        counts_again = conn.execute(
            "SELECT (SELECT count(*) FROM crm_profiles WHERE merged_into IS NULL),"
            " (SELECT count(*) FROM crm_transactions), (SELECT count(*) FROM loyalty_accounts),"
            " (SELECT coalesce(sum(points), 0) FROM loyalty_entries)"
        ).fetchone()
    assert first == again and first["customers"] == 15
    assert counts == counts_again
    assert counts is not None and counts[0] == 15 and counts[1] == first["transactions"] > 0
    assert counts[3] > 0  # members earned points through record_transaction
