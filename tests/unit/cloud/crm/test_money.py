"""Currency codes and amounts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.idempotency import request_hash
from cloud.crm.money import to_amount, validate_currency


def test_currency() -> None:
    assert validate_currency(" eur ") == "EUR"
    for bad in ("EU", "EURO", "XYZ", ""):
        with pytest.raises(CrmInvalidInputError, match="unknown currency"):
            validate_currency(bad)


def test_amounts() -> None:
    assert to_amount("12.50", field="x") == Decimal("12.50")
    for bad in ("1.001", "NaN", "Infinity", "abc"):
        with pytest.raises(CrmInvalidInputError, match="x"):
            to_amount(bad, field="x")


def test_request_hash_ignores_key_order() -> None:
    assert request_hash({"a": 1, "b": 2}) == request_hash({"b": 2, "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})
