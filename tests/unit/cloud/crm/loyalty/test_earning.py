"""Earning rules in their documented order."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.loyalty.earning import Purchase, PurchaseLine, compute_earn
from cloud.crm.loyalty.program import Campaign, LoyaltyProgram

WHEN = datetime(2026, 6, 15, 12, tzinfo=UTC)
PROGRAM = LoyaltyProgram(
    sku_multipliers={"SKU-X": Decimal(3)},
    category_multipliers={"music": Decimal(2), "sale": Decimal("0.5")},
    campaigns=[
        Campaign(
            name="summer",
            starts_at=datetime(2026, 6, 1, tzinfo=UTC),
            ends_at=datetime(2026, 7, 1, tzinfo=UTC),
            multiplier=Decimal("1.5"),
            bonus_points=10,
        ),
        Campaign(
            name="other-store",
            starts_at=datetime(2026, 1, 1, tzinfo=UTC),
            ends_at=datetime(2027, 1, 1, tzinfo=UTC),
            bonus_points=99,
            store_ids=frozenset({"s9"}),
        ),
    ],
    first_purchase_bonus=100,
)


def _purchase(**over: object) -> Purchase:
    base: dict[str, object] = {
        "currency": "USD",
        "total": Decimal("30.00"),
        "occurred_at": WHEN,
        "store_id": "s1",
        "lines": (
            PurchaseLine("SKU-X", "music", Decimal("10.00")),
            PurchaseLine("SKU-Y", "music", Decimal("10.00")),
            PurchaseLine("SKU-Z", None, Decimal("10.00")),
        ),
    }
    return Purchase(**{**base, **over})  # type: ignore[arg-type]


def test_steps_in_order() -> None:
    out = compute_earn(_purchase(birth_date=date(1990, 6, 2), first_purchase=True), PROGRAM)
    # base: 10*3 (SKU wins over category) + 10*2 + 10*1 = 60
    assert out.steps == [
        ("base", 60),
        ("campaign:summer", 40),
        ("birthday", 60),
        ("first_purchase", 100),
    ]
    assert out.total == 260 and out.qualifying == 60


def test_no_lines_uses_total_and_rounds_down() -> None:
    out = compute_earn(
        _purchase(lines=(), total=Decimal("9.99"), occurred_at=datetime(2026, 2, 1, tzinfo=UTC)),
        PROGRAM,
    )
    assert out.steps == [("base", 9)]


def test_spend_basis_and_rates() -> None:
    gbp = compute_earn(
        _purchase(currency="GBP", lines=(), occurred_at=datetime(2026, 2, 1, tzinfo=UTC)),
        LoyaltyProgram(tier_basis="spend"),
    )
    assert gbp.steps == [("base", 36)] and gbp.qualifying == 30


def test_currency_without_rate_is_invalid() -> None:
    with pytest.raises(CrmInvalidInputError, match="no earn rate"):
        compute_earn(_purchase(currency="JPY"), PROGRAM)


def test_programme_validates_currency_codes() -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        LoyaltyProgram(earn_rates={"XXY": Decimal(1)})
