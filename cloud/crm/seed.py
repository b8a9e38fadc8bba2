"""Synthetic CRM data for `mallpulse demo`, written through the real services.

Deterministic for a given rng_seed and safe to run twice (receipts, touchpoints and records are
idempotent by their external ids; existing accounts are reused).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from cloud.crm import consent
from cloud.crm.identity.service import ingest_record
from cloud.crm.loyalty import ledger, rewards
from cloud.crm.loyalty.program import LoyaltyProgram
from cloud.crm.touchpoints import record_touchpoint
from cloud.crm.transactions import LineItem, record_transaction
from cloud.db.repositories import crm_loyalty as loyalty_repo
from cloud.db.repositories import crm_rewards as rewards_repo

Conn = psycopg.Connection[Any]
_FIRST = ("Ann", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jia", "Kofi")
_LAST = ("Lee", "Muller", "Nakamura", "Okafor", "Patel", "Quinn", "Rossi", "Silva", "Tan")
_CATALOGUE = (
    ("SKU-TEE", "apparel", "19.90"),
    ("SKU-JEANS", "apparel", "59.00"),
    ("SKU-MUG", "home", "9.50"),
    ("SKU-CD", "music", "14.99"),
    ("SKU-HEADSET", "electronics", "89.00"),
    ("SKU-COFFEE", "food", "4.20"),
)


def _items(rng: random.Random) -> list[LineItem]:
    picks = rng.sample(_CATALOGUE, k=rng.randint(1, 3))
    return [
        LineItem(sku=s, category=c, quantity=Decimal(rng.randint(1, 2)), unit_price=Decimal(p))
        for s, c, p in picks
    ]


def _customer(conn: Conn, rng: random.Random, n: int, seed: int) -> int:
    email = f"customer{n}.s{seed}@demo.mallpulse.dev"
    res = ingest_record(
        conn,
        source="web",
        identifiers={"email": email},
        source_key=f"demo-{seed}-{n}",
        attributes={
            "first_name": rng.choice(_FIRST),
            "last_name": rng.choice(_LAST),
            "country": rng.choice(("US", "GB", "DE", "CN")),
        },
    )
    return res.profile_id


def _account(conn: Conn, profile_id: int, number: str) -> int:
    existing = [a for a in loyalty_repo.accounts_of_profiles(conn, [profile_id])]
    if existing:
        return int(existing[0]["id"])
    return int(ledger.open_account(conn, profile_id=profile_id, member_number=number)["id"])


def _activity(
    conn: Conn,
    rng: random.Random,
    n: int,
    seed: int,
    stores: Sequence[str],
    now: datetime,
    program: LoyaltyProgram,
) -> int:
    ident = {"email": f"customer{n}.s{seed}@demo.mallpulse.dev"}
    for k in range(rng.randint(0, 4)):
        record_touchpoint(
            conn,
            channel=rng.choice(("web", "app", "email")),
            event=rng.choice(("product_view", "search", "open", "click", "add_to_cart")),
            identifiers=ident,
            occurred_at=now - timedelta(days=rng.randint(1, 360)),
            external_id=f"demo-{seed}-{n}-tp{k}",
        )
    count = 0
    for k in range(rng.choice((0, 0, 1, 1, 2, 3, 5, 8))):
        items = _items(rng)
        total = sum((i.quantity * i.unit_price for i in items), Decimal(0))
        record_transaction(
            conn,
            store_id=rng.choice(list(stores)),
            external_id=f"demo-{seed}-{n}-{k}",
            occurred_at=now - timedelta(days=rng.randint(0, 360), minutes=rng.randint(0, 600)),
            currency="USD",
            total_amount=total.quantize(Decimal("0.01")),
            identifiers=ident,
            items=items,
            program=program,
        )
        count += 1
    return count


def seed_demo_crm(
    conn: Conn,
    *,
    customers: int = 200,
    stores: Sequence[str],
    program: LoyaltyProgram,
    rng_seed: int = 7,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Create customers, loyalty members, touchpoints, purchases (earning by `program`, the
    configured programme), consents and rewards."""
    if not stores:
        raise ValueError("seed_demo_crm needs at least one existing store id")
    rng = random.Random(rng_seed)
    when = now or datetime.now(UTC)
    totals = {"customers": 0, "members": 0, "transactions": 0, "consents": 0}
    for n in range(customers):
        with conn.transaction():
            pid = _customer(conn, rng, n, rng_seed)
            if rng.random() < 0.6:
                _account(conn, pid, f"D{rng_seed:03d}{n:07d}")
                totals["members"] += 1
            totals["transactions"] += _activity(conn, rng, n, rng_seed, stores, when, program)
            if rng.random() < 0.5:
                consent.set_consent(
                    conn,
                    profile_id=pid,
                    channel="sms",
                    purpose="marketing",
                    granted=True,
                    source="demo-seed",
                    actor="seed",
                )
                totals["consents"] += 1
        totals["customers"] += 1
        if progress is not None:
            progress(n + 1, customers)
    if rewards_repo.reward_by_code(conn, f"DEMO-MUG-{rng_seed}") is None:
        rewards.create_reward(
            conn, code=f"DEMO-MUG-{rng_seed}", name="MallPulse mug", cost_points=150, stock=25
        )
    conn.commit()
    return totals
