"""Survivorship picks each golden attribute by its rule, skipping empty values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.identity.rules import IdentityRules, Survivorship
from cloud.crm.identity.survivorship import golden_attributes, validate_attributes


def _rec(i: int, source: str, day: int, **attrs: str) -> dict[str, object]:
    trust = IdentityRules().trust(source)
    return {
        "id": i,
        "trust": trust,
        "attributes": attrs,
        "observed_at": datetime(2026, 1, day, tzinfo=UTC),
    }


def test_rules_per_attribute() -> None:
    records = [
        _rec(1, "pos", 1, first_name="Robert", city="Boston"),
        _rec(2, "web", 5, first_name="Bob", city="Austin", last_name=""),
        _rec(3, "web", 9, city="", last_name="Smith"),
    ]
    golden = golden_attributes(records, IdentityRules())
    assert golden == {"first_name": "Robert", "city": "Austin", "last_name": "Smith"}
    first_seen = IdentityRules(survivorship={"city": Survivorship.FIRST_SEEN})
    assert golden_attributes(records, first_seen)["city"] == "Boston"


def test_validation_names_fields() -> None:
    assert validate_attributes({"country": "fr", "city": " Lyon "}) == {
        "country": "FR",
        "city": "Lyon",
    }
    with pytest.raises(CrmInvalidInputError) as err:
        validate_attributes({"birth_date": "2999-01-01", "nickname": "x"})
    assert sorted(e["field"] for e in err.value.errors or []) == ["birth_date", "nickname"]


def test_rules_refuse_a_kind_both_strong_and_weak() -> None:
    with pytest.raises(ValueError, match="both strong and weak"):
        IdentityRules(weak_kinds=frozenset({"email"}))  # type: ignore[arg-type]
