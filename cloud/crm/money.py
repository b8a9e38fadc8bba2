"""Money helpers: ISO 4217 currency codes and Decimal amounts."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pycountry

from cloud.crm.errors import CrmInvalidInputError

#: Amounts are stored as numeric(14, 2): 12 digits before the decimal point.
MAX_AMOUNT = Decimal(10) ** 12


def validate_currency(code: str) -> str:
    """The upper-case ISO 4217 code; CrmInvalidInputError for anything else."""
    upper = code.strip().upper() if isinstance(code, str) else ""
    if len(upper) != 3 or pycountry.currencies.get(alpha_3=upper) is None:
        raise CrmInvalidInputError(f"unknown currency {code!r}: expected an ISO 4217 code like EUR")
    return upper


def to_amount(value: Decimal | str | int, *, field: str) -> Decimal:
    """A finite Decimal with at most 2 decimal places; CrmInvalidInputError names the field."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise CrmInvalidInputError(f"{field}: {value!r} is not a number") from exc
    if not amount.is_finite():
        raise CrmInvalidInputError(f"{field}: {value!r} is not a finite number")
    if abs(amount) >= MAX_AMOUNT:
        raise CrmInvalidInputError(f"{field}: {value!r} is out of range (below {MAX_AMOUNT:,})")
    if amount != amount.quantize(Decimal("0.01")):
        raise CrmInvalidInputError(f"{field}: {value!r} has more than 2 decimal places")
    return amount
