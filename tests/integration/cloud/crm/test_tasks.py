"""The CRM beat tasks on a database of their own: expiry takes only unconsumed points."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

from cloud.core.settings import Settings
from cloud.crm.identity.service import ingest_record
from cloud.crm.loyalty import ledger
from cloud.db.repositories import crm_loyalty as repo
from cloud.workers.crm_tasks import run_expiry, run_tier_review

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_expiry_task_expires_only_unconsumed_points_once(
    fresh_database: Callable[..., str],
) -> None:
    url = fresh_database()
    with psycopg.connect(url) as conn:
        who = ingest_record(conn, source="api", identifiers={"email": "exp@t.org"})
        acct = int(ledger.open_account(conn, profile_id=who.profile_id, now=T0)["id"])
        ledger.earn(conn, account_id=acct, points=100, reason="a", now=T0)
        ledger.earn(conn, account_id=acct, points=50, reason="b", now=T0 + timedelta(days=200))
        ledger.burn(conn, account_id=acct, points=70, now=T0 + timedelta(days=10))
    settings = Settings(database_url=url)
    after_first = T0 + timedelta(days=366)
    assert run_expiry(settings, now=after_first) == 30  # 100 earned - 70 burned
    assert run_expiry(settings, now=after_first) == 0
    with psycopg.connect(url) as conn:
        assert repo.balance(conn, acct, after_first) == 50
        kinds = [e["kind"] for e in repo.entries(conn, acct, 10)]
        assert kinds == ["expire", "burn", "earn", "earn"]
    assert run_tier_review(settings, now=after_first) == 0  # still the lowest tier
