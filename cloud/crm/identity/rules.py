"""Identity-resolution rules as configuration: which identifier kinds link, and survivorship."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.crm.identity.normalize import IdentifierKind


class Survivorship(StrEnum):
    """How the golden value of an attribute is chosen among a person's records (empties skipped)."""

    MOST_RECENT = "most_recent"
    MOST_TRUSTED = "most_trusted"
    FIRST_SEEN = "first_seen"


_STRONG_DEFAULT = frozenset(k for k in IdentifierKind if k is not IdentifierKind.DEVICE_ID)

_SURVIVORSHIP_DEFAULT = {
    "first_name": Survivorship.MOST_TRUSTED,
    "last_name": Survivorship.MOST_TRUSTED,
    "birth_date": Survivorship.MOST_TRUSTED,
    "gender": Survivorship.MOST_TRUSTED,
    "language": Survivorship.MOST_RECENT,
    "city": Survivorship.MOST_RECENT,
    "postal_code": Survivorship.MOST_RECENT,
    "country": Survivorship.MOST_RECENT,
}

_TRUST_DEFAULT = {"pos": 30, "import": 25, "app": 20, "support": 15, "web": 10, "api": 10}


class IdentityRules(BaseModel):
    """Which identifier kinds merge records, and how golden attributes survive a merge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strong_kinds: frozenset[IdentifierKind] = Field(
        default=_STRONG_DEFAULT,
        description="Kinds that identify one person: records sharing one are the same person.",
    )
    weak_kinds: frozenset[IdentifierKind] = Field(
        default=frozenset({IdentifierKind.DEVICE_ID}),
        description="Kinds that only attach anonymous records (no strong identifier) to a "
        "profile; they never join two identified profiles.",
    )
    survivorship: dict[str, Survivorship] = Field(
        default=_SURVIVORSHIP_DEFAULT, description="Rule per profile attribute."
    )
    source_trust: dict[str, int] = Field(
        default=_TRUST_DEFAULT,
        description="Trust of each record source (higher wins for most_trusted); unknown = 0.",
    )
    default_phone_region: str = Field(
        default="US",
        min_length=2,
        max_length=2,
        description="ISO 3166 region for phone numbers written without a country code.",
    )
    max_region_records: int = Field(
        default=20_000,
        ge=10,
        description="Most records re-resolved together when one record arrives (safety cap).",
    )

    @model_validator(mode="after")
    def _disjoint(self) -> IdentityRules:
        both = self.strong_kinds & self.weak_kinds
        if both:
            raise ValueError(f"kinds cannot be both strong and weak: {sorted(both)}")
        return self

    def trust(self, source: str) -> int:
        """Trust score of a record source."""
        return self.source_trust.get(source, 0)
