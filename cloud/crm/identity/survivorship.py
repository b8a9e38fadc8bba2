"""Profile attributes: validation of what records bring, and survivorship into the golden record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pycountry
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.identity.rules import IdentityRules, Survivorship


class ProfileAttributes(BaseModel):
    """Person attributes a source record may carry; empty strings count as absent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: str | None = Field(default=None, max_length=100, description="Given name.")
    last_name: str | None = Field(default=None, max_length=100, description="Family name.")
    birth_date: date | None = Field(default=None, description="Date of birth (YYYY-MM-DD).")
    gender: str | None = Field(default=None, max_length=30, description="Self-described gender.")
    language: str | None = Field(default=None, max_length=16, description="BCP 47 language tag.")
    city: str | None = Field(default=None, max_length=100, description="City.")
    postal_code: str | None = Field(default=None, max_length=20, description="Postal code.")
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2 country code.")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if pycountry.countries.get(alpha_2=value.upper()) is None:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return value.upper()

    @field_validator("birth_date")
    @classmethod
    def _past(cls, value: date | None) -> date | None:
        if value is not None and not date(1900, 1, 1) <= value <= date.today():
            raise ValueError("must be between 1900-01-01 and today")
        return value


def validate_attributes(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """Validated, non-empty attributes as JSON-ready strings; errors name the field."""
    cleaned = {k: v for k, v in (raw or {}).items() if v not in (None, "")}
    try:
        model = ProfileAttributes.model_validate(cleaned)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        fields = ", ".join(e["field"] for e in errors)
        raise CrmInvalidInputError(f"invalid profile attributes: {fields}", errors=errors) from exc
    return {k: str(v) for k, v in model.model_dump(exclude_none=True, mode="json").items()}


def golden_attributes(records: Sequence[Mapping[str, Any]], rules: IdentityRules) -> dict[str, str]:
    """Choose each attribute's value among records (`attributes`, `trust`, `observed_at`, `id`)."""
    out: dict[str, str] = {}
    names = {name for r in records for name in r["attributes"]}
    for name in sorted(names):
        candidates = [r for r in records if r["attributes"].get(name) not in (None, "")]
        if not candidates:
            continue
        rule = rules.survivorship.get(name, Survivorship.MOST_RECENT)
        best = min(candidates, key=lambda r: _rank(r, rule))
        out[name] = str(best["attributes"][name])
    return out


def _rank(record: Mapping[str, Any], rule: Survivorship) -> tuple[Any, ...]:
    seen: datetime = record["observed_at"]
    ts = seen.timestamp()
    if rule is Survivorship.FIRST_SEEN:
        return (ts, record["id"])
    if rule is Survivorship.MOST_TRUSTED:
        return (-int(record["trust"]), -ts, -record["id"])
    return (-ts, -int(record["trust"]), -record["id"])
