"""Points for a purchase, by rules evaluated in a fixed, documented order:

1. base: every line's amount x the currency's earn rate x the line multiplier (the SKU's
   multiplier, else its category's, else 1); a receipt without lines uses its total;
2. campaigns active at the purchase time (and store): their multipliers add up (1 + sum of
   (m - 1)) on the base, and their fixed bonus points are added;
3. birthday: in the member's birth month the base earns (birthday_multiplier - 1) x base extra;
4. first purchase: a fixed bonus on the member's first sale;
5. each step's result is rounded down to whole points. Qualifying points are the base of step 1
   (or, with tier_basis "spend", the whole currency units spent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.loyalty.program import LoyaltyProgram


@dataclass(frozen=True)
class PurchaseLine:
    """What earning needs from a line item."""

    sku: str
    category: str | None
    amount: Decimal


@dataclass(frozen=True)
class Purchase:
    """What earning needs from a purchase."""

    currency: str
    total: Decimal
    occurred_at: datetime
    store_id: str
    lines: tuple[PurchaseLine, ...] = ()
    birth_date: date | None = None
    first_purchase: bool = False


@dataclass(frozen=True)
class EarnBreakdown:
    """The points of each step, and their sum."""

    steps: list[tuple[str, int]] = field(default_factory=list)
    qualifying: int = 0

    @property
    def total(self) -> int:
        """Points to credit."""
        return sum(p for _, p in self.steps)


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def _base(purchase: Purchase, program: LoyaltyProgram, rate: Decimal) -> Decimal:
    if not purchase.lines:
        return purchase.total * rate
    base = Decimal(0)
    for line in purchase.lines:
        mult = program.sku_multipliers.get(line.sku)
        if mult is None and line.category is not None:
            mult = program.category_multipliers.get(line.category)
        base += line.amount * rate * (mult if mult is not None else Decimal(1))
    return base


def compute_earn(purchase: Purchase, program: LoyaltyProgram) -> EarnBreakdown:
    """Apply the earning rules in order; a currency without an earn rate is invalid input."""
    rate = program.earn_rates.get(purchase.currency)
    if rate is None:
        raise CrmInvalidInputError(
            f"currency {purchase.currency} has no earn rate; known: {sorted(program.earn_rates)}"
        )
    base = max(_base(purchase, program, rate), Decimal(0))
    steps = [("base", _floor(base))]
    active = [
        c
        for c in program.campaigns
        if c.starts_at <= purchase.occurred_at < c.ends_at
        and (not c.store_ids or purchase.store_id in c.store_ids)
    ]
    for c in active:
        steps.append((f"campaign:{c.name}", _floor(base * (c.multiplier - 1)) + c.bonus_points))
    bd = purchase.birth_date
    if bd is not None and bd.month == purchase.occurred_at.month:
        steps.append(("birthday", _floor(base * (program.birthday_multiplier - 1))))
    if purchase.first_purchase and program.first_purchase_bonus:
        steps.append(("first_purchase", program.first_purchase_bonus))
    qualifying = _floor(purchase.total) if program.tier_basis == "spend" else steps[0][1]
    return EarnBreakdown(steps=[s for s in steps if s[1] > 0], qualifying=max(qualifying, 0))
