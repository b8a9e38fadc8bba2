"""The points ledger against a reference model (hypothesis stateful), and parallel burns."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from cloud.crm.errors import CrmInvalidInputError, InsufficientPointsError
from cloud.crm.identity.service import ingest_record
from cloud.crm.loyalty import ledger
from cloud.crm.loyalty.program import LoyaltyProgram
from cloud.db.repositories import crm_loyalty as repo

PROGRAM = LoyaltyProgram(expiry_days=30)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_account(conn: psycopg.Connection[Any], now: datetime = T0) -> int:
    """A fresh customer with an open account."""
    who = ingest_record(conn, source="api", identifiers={"email": f"{uuid.uuid4().hex}@t.org"})
    return int(ledger.open_account(conn, profile_id=who.profile_id, now=now, program=PROGRAM)["id"])


class ReferenceLedger:
    """Lots as [remaining, expires_at] in creation order: the arithmetic the ledger must match."""

    def __init__(self) -> None:
        self.lots: dict[int, list[list[Any]]] = {}

    def balance(self, a: int, now: datetime) -> int:
        return sum(r for r, exp in self.lots[a] if exp > now)

    def earn(self, a: int, points: int, now: datetime) -> None:
        self.lots[a].append([points, now + timedelta(days=PROGRAM.expiry_days)])

    def take(self, a: int, points: int, now: datetime) -> list[tuple[int, datetime]]:
        open_lots = sorted(
            (lot for lot in self.lots[a] if lot[0] > 0 and lot[1] > now), key=lambda lot: lot[1]
        )  # sorted() is stable: ties keep creation order, like ORDER BY expires_at, id
        taken, need = [], points
        for lot in open_lots:
            n = min(need, lot[0])
            if n:
                lot[0] -= n
                taken.append((n, lot[1]))
                need -= n
        return taken

    def expire(self, a: int, now: datetime) -> int:
        total = 0
        for lot in self.lots[a]:
            if lot[1] <= now:
                total += lot[0]
                lot[0] = 0
        return total


class LedgerMachine(RuleBasedStateMachine):
    """Random earn/burn/transfer/expire/clock steps on two accounts vs the reference."""

    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.conn = psycopg.connect(self.url)
        self.model = ReferenceLedger()
        self.now = T0
        self.accounts: list[int] = []

    @initialize()
    def open_two(self) -> None:
        self.accounts = [new_account(self.conn), new_account(self.conn)]
        self.conn.commit()
        for a in self.accounts:
            self.model.lots[a] = []

    @rule(i=st.integers(0, 1), points=st.integers(1, 500), days=st.integers(0, 15))
    def earn(self, i: int, points: int, days: int) -> None:
        self.now += timedelta(days=days)  # every step may move the clock: lots differ in expiry
        a = self.accounts[i]
        ledger.earn(
            self.conn, account_id=a, points=points, reason="t", now=self.now, program=PROGRAM
        )
        self.model.earn(a, points, self.now)

    @rule(i=st.integers(0, 1), share=st.integers(1, 12), days=st.integers(0, 15))
    def burn(self, i: int, share: int, days: int) -> None:
        self.now += timedelta(days=days)
        a = self.accounts[i]
        points = max(1, self.model.balance(a, self.now) * share // 10)  # > 10/10: overdraw try
        if points > self.model.balance(a, self.now):
            with pytest.raises(InsufficientPointsError), self.conn.transaction():
                ledger.burn(self.conn, account_id=a, points=points, now=self.now)
        else:
            ledger.burn(self.conn, account_id=a, points=points, now=self.now)
            self.model.take(a, points, self.now)

    @rule(i=st.integers(0, 1), share=st.integers(1, 12))
    def transfer(self, i: int, share: int) -> None:
        src, dst = self.accounts[i], self.accounts[1 - i]
        points = max(1, self.model.balance(src, self.now) * share // 10)
        if points > self.model.balance(src, self.now):
            with pytest.raises(InsufficientPointsError), self.conn.transaction():
                ledger.transfer(
                    self.conn,
                    from_account_id=src,
                    to_account_id=dst,
                    points=points,
                    now=self.now,
                )
            return
        ledger.transfer(
            self.conn, from_account_id=src, to_account_id=dst, points=points, now=self.now
        )
        for n, exp in self.model.take(src, points, self.now):
            self.model.lots[dst].append([n, exp])

    @rule(days=st.integers(1, 20))
    def tick(self, days: int) -> None:
        self.now += timedelta(days=days)

    @rule(i=st.integers(0, 1))
    def expire(self, i: int) -> None:
        a = self.accounts[i]
        got = ledger.expire_account(self.conn, account_id=a, now=self.now)
        assert got == self.model.expire(a, self.now)

    @invariant()
    def balances_match(self) -> None:
        for a in self.accounts:
            assert repo.balance(self.conn, a, self.now) == self.model.balance(a, self.now)
            entries = self.conn.execute(
                "SELECT coalesce(sum(points), 0) FROM loyalty_entries WHERE account_id = %s", (a,)
            ).fetchone()[0]
            lots = self.conn.execute(
                "SELECT coalesce(sum(remaining), 0) FROM loyalty_lots WHERE account_id = %s", (a,)
            ).fetchone()[0]
            assert entries == lots  # the ledger sums to what the lots still hold

    def teardown(self) -> None:
        self.conn.commit()
        self.conn.close()


def test_ledger_matches_reference_model(database_url: str) -> None:
    machine = type("Machine", (LedgerMachine,), {"url": database_url})
    run_state_machine_as_test(
        machine, settings=settings(max_examples=40, stateful_step_count=25, deadline=None)
    )


def test_parallel_burns_never_overdraw(pg_pool: Any) -> None:
    with pg_pool.connection() as c:
        account = new_account(c, now=datetime.now(UTC))
        ledger.earn(c, account_id=account, points=200, reason="seed")

    def burn(_: int) -> str:
        with pg_pool.connection() as c:
            try:
                ledger.burn(c, account_id=account, points=30)
            except InsufficientPointsError:
                return "refused"
            return "ok"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(burn, range(16)))
    assert outcomes.count("ok") == 6 and outcomes.count("refused") == 10
    with pg_pool.connection() as c:
        assert repo.balance(c, account, datetime.now(UTC)) == 20
        lots = c.execute(
            "SELECT min(remaining) FROM loyalty_lots WHERE account_id = %s", (account,)
        ).fetchone()
        assert lots[0] >= 0


@pytest.mark.parametrize("points", [0, -5, 2.5, True])
def test_non_positive_points_are_refused(conn: psycopg.Connection[Any], points: Any) -> None:
    account = new_account(conn)
    with pytest.raises(CrmInvalidInputError, match="positive whole number"):
        ledger.earn(conn, account_id=account, points=points, reason="x")
    with pytest.raises(CrmInvalidInputError):
        ledger.burn(conn, account_id=account, points=points)


def test_burn_takes_the_oldest_expiring_lot_first(conn: psycopg.Connection[Any]) -> None:
    account = new_account(conn)
    ledger.earn(conn, account_id=account, points=100, reason="a", now=T0, program=PROGRAM)
    later = T0 + timedelta(days=20)
    ledger.earn(conn, account_id=account, points=100, reason="b", now=later, program=PROGRAM)
    ledger.burn(conn, account_id=account, points=100, now=later)
    after_first_expiry = T0 + timedelta(days=35)
    assert ledger.expire_account(conn, account_id=account, now=after_first_expiry) == 0
    assert repo.balance(conn, account, after_first_expiry) == 100
