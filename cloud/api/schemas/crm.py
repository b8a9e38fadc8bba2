"""Schemas of the CRM API: customers, identities, touchpoints, transactions, consent, lifecycle."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from cloud.api.params import IsoAwareDatetime, IsoDate
from cloud.api.schemas.limits import JsonObject

#: Identifiers by kind -> raw value; at most 16 kinds, values of at most 320 characters.
Identifiers = Annotated[
    dict[
        Annotated[str, StringConstraints(max_length=32)],
        Annotated[str, StringConstraints(max_length=320)],
    ],
    Field(max_length=16),
]
_IDS = (
    "Identifiers by kind (email, phone, loyalty_number, pos_customer_id, device_id, "
    "app_user_id, wechat_id, whatsapp_id) -> raw value; normalised and validated."
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attributes(_In):
    """Person attributes a source brings."""

    first_name: str | None = Field(default=None, max_length=100, description="Given name.")
    last_name: str | None = Field(default=None, max_length=100, description="Family name.")
    birth_date: IsoDate | None = Field(default=None, description="Date of birth.")
    gender: str | None = Field(default=None, max_length=64, description="Self-described gender.")
    language: str | None = Field(default=None, max_length=64, description="BCP 47 language tag.")
    city: str | None = Field(default=None, max_length=100, description="City.")
    postal_code: str | None = Field(default=None, max_length=32, description="Postal code.")
    country: str | None = Field(default=None, max_length=64, description="ISO 3166-1 alpha-2 code.")


class CustomerCreate(_In):
    """A source record of a customer; resolved into a profile by its identifiers."""

    identifiers: Identifiers = Field(min_length=1, description=_IDS)
    attributes: Attributes = Field(default_factory=Attributes, description="Attributes.")
    source: str = Field(default="api", min_length=1, max_length=32, description="Record source.")
    source_key: str | None = Field(
        default=None, max_length=200, description="The source's own id; updates that record."
    )


class ResolvedPublic(BaseModel):
    """Where a record landed."""

    record_id: int = Field(description="The stored source record.")
    profile_id: int = Field(description="The live profile of the person.")
    created_profile: bool = Field(description="True when a new person was created.")
    merged_profiles: list[int] = Field(description="Profiles absorbed by this record.")


class CustomerPublic(BaseModel):
    """The golden record of a person (360-degree view)."""

    id: int = Field(description="The live profile id.")
    requested_id: int = Field(description="The id asked for (differs when it was merged).")
    merged_ids: list[int] = Field(description="Profile ids merged into this one (redirect here).")
    identified: bool = Field(description="Carries at least one strong identifier.")
    attributes: dict[str, str] = Field(description="Golden attributes after survivorship.")
    lifecycle_stage: str | None = Field(description="Current lifecycle stage.")
    identifiers: list[dict[str, Any]] = Field(description="Identifiers with source.")
    consents: list[dict[str, Any]] = Field(description="Effective consents.")
    loyalty_accounts: list[dict[str, Any]] = Field(description="Accounts, balance and tier.")
    recent_touchpoints: list[dict[str, Any]] = Field(description="Latest touchpoints.")
    recent_transactions: list[dict[str, Any]] = Field(description="Latest POS transactions.")
    scores: dict[str, Any] | None = Field(description="Predictive scores, when computed.")
    created_at: datetime = Field(description="Created.")
    updated_at: datetime = Field(description="Last changed.")


class CustomerSummary(BaseModel):
    """A row of the customer list."""

    id: int = Field(description="Profile id.")
    identified: bool = Field(description="Carries a strong identifier.")
    attributes: dict[str, str] = Field(description="Golden attributes.")
    lifecycle_stage: str | None = Field(description="Lifecycle stage.")
    created_at: datetime = Field(description="Created.")
    updated_at: datetime = Field(description="Last changed.")


class MergePublic(BaseModel):
    """One entry of the merge history."""

    id: int = Field(description="Merge id (undo it with POST .../undo).")
    survivor_id: int = Field(description="The profile that kept its id.")
    absorbed_id: int = Field(description="The profile that now redirects.")
    record_ids: list[int] = Field(description="Records moved.")
    reason: str = Field(description="What caused it.")
    merged_at: datetime = Field(description="When.")
    undone_at: datetime | None = Field(description="When it was undone, if it was.")


class UnmergePublic(BaseModel):
    """Result of an unmerge."""

    survivor_id: int = Field(description="The profile that had absorbed the other.")
    restored_id: int = Field(description="The profile restored.")


class TouchpointCreate(_In):
    """An interaction on a channel."""

    channel: Literal["web", "app", "pos", "store_visit", "email", "sms", "support"] = Field(
        description="Channel."
    )
    event: str = Field(min_length=1, max_length=64, description="e.g. product_view, open, click.")
    identifiers: Identifiers = Field(min_length=1, description=_IDS)
    occurred_at: IsoAwareDatetime = Field(description="When it happened.")
    store_id: str | None = Field(
        default=None, max_length=64, description="Store, for visits and POS."
    )
    properties: JsonObject = Field(
        default_factory=dict,
        description="Event properties: at most 8 levels deep, 200 keys in all, 16 KiB as JSON.",
    )
    external_id: str | None = Field(
        default=None, max_length=128, description="The channel's event id (deduplicates)."
    )
    attributes: Attributes = Field(default_factory=Attributes, description="Attributes.")


class TouchpointPublic(BaseModel):
    """A stored touchpoint."""

    touchpoint_id: int = Field(description="Touchpoint id.")
    profile_id: int = Field(description="The person it was attached to.")
    created: bool = Field(description="False when the external id was seen before.")
    lifecycle_stage: str | None = Field(description="Stage after this touchpoint.")


class LineItemIn(_In):
    """A receipt line."""

    sku: str = Field(min_length=1, max_length=64, description="Product SKU.")
    category: str | None = Field(default=None, max_length=64, description="Product category.")
    quantity: Decimal = Field(gt=0, max_digits=12, decimal_places=3, description="Quantity.")
    unit_price: Decimal = Field(ge=0, max_digits=14, decimal_places=2, description="Unit price.")


class TransactionCreate(_In):
    """A POS transaction with line items."""

    store_id: str = Field(max_length=64, description="Store.")
    external_id: str = Field(min_length=1, max_length=128, description="Receipt id (dedupe).")
    occurred_at: IsoAwareDatetime = Field(description="Time of sale.")
    currency: str = Field(max_length=8, description="ISO 4217 code.")
    total_amount: Decimal = Field(
        max_digits=14, decimal_places=2, description="Total; negative for returns."
    )
    kind: Literal["sale", "return"] = Field(default="sale", description="Sale or return.")
    identifiers: Identifiers = Field(min_length=1, description=_IDS)
    items: list[LineItemIn] = Field(
        default_factory=list, max_length=1000, description="Line items (at most 1000)."
    )
    attributes: Attributes = Field(default_factory=Attributes, description="Attributes.")


class TransactionPublic(BaseModel):
    """A recorded transaction."""

    transaction_id: int = Field(description="Transaction id (monotonic).")
    profile_id: int = Field(description="The person.")
    created: bool = Field(description="False when the receipt was recorded before.")
    points_earned: int = Field(description="Loyalty points credited.")


class LineItemPublic(BaseModel):
    """A stored receipt line."""

    line_no: int = Field(description="Line number from 1.")
    sku: str = Field(description="SKU.")
    category: str | None = Field(description="Category.")
    quantity: Decimal = Field(description="Quantity.")
    unit_price: Decimal = Field(description="Unit price.")
    amount: Decimal = Field(description="quantity x unit_price.")


class TransactionDetail(BaseModel):
    """A stored transaction with its lines."""

    id: int = Field(description="Transaction id.")
    profile_id: int = Field(description="The person (current profile id).")
    store_id: str = Field(description="Store.")
    external_id: str = Field(description="Receipt id.")
    occurred_at: datetime = Field(description="Time of sale.")
    currency: str = Field(description="ISO 4217 code.")
    total_amount: Decimal = Field(description="Total.")
    kind: str = Field(description="sale or return.")
    reversed_at: datetime | None = Field(description="When it was reversed.")
    points_earned: int = Field(description="Loyalty points it earned.")
    items: list[LineItemPublic] = Field(description="Receipt lines.")


class ReversalPublic(BaseModel):
    """Result of reversing a purchase."""

    transaction_id: int = Field(description="Transaction id.")
    reversed_points: int = Field(description="Points taken back.")
    already: bool = Field(description="True when it had been reversed before.")
    replayed: bool = Field(default=False, description="True for an idempotent retry.")


class ConsentUpdate(_In):
    """Grant or withdraw consent for a channel and purpose."""

    # Strict: a consent is a JSON true/false, never "yes", "1" or 1 read as a grant.
    granted: StrictBool = Field(description="True to grant, False to withdraw/deny.")
    source: str = Field(min_length=1, max_length=64, description="Where it was collected.")
    proof: str | None = Field(default=None, max_length=2000, description="Evidence reference.")


class ConsentConfirm(_In):
    """Double opt-in confirmation."""

    token: str = Field(
        min_length=10, max_length=200, description="Token sent to the subject's e-mail address."
    )
    proof: str | None = Field(default=None, max_length=2000, description="e.g. IP and agent.")


class ConsentPublic(BaseModel):
    """Consent state after a change (a double opt-in token is never part of it)."""

    profile_id: int = Field(description="Person.")
    channel: str = Field(description="Channel.")
    purpose: str = Field(description="Purpose.")
    status: Literal["granted", "denied", "pending"] = Field(description="Status.")
    updated_at: datetime = Field(description="When.")


class FunnelPublic(BaseModel):
    """Lifecycle stage entries and conversion in a period."""

    start: datetime = Field(description="Period start.")
    end: datetime = Field(description="Period end (exclusive).")
    store_id: str | None = Field(description="Store filter.")
    entered: dict[str, int] = Field(description="Distinct people entering each stage.")
    conversion: dict[str, float | None] = Field(description="Next stage / this stage.")
    current: dict[str, int] = Field(description="People per current stage (all stores).")


class ImportReport(BaseModel):
    """Result of a CSV import."""

    import_id: str = Field(description="Import id (rejects are kept under it).")
    rows: int = Field(description="Data rows read.")
    imported: int = Field(description="Rows stored.")
    rejected: int = Field(description="Rows rejected.")
    errors: list[dict[str, Any]] = Field(description="Per-row errors (line, field, message).")
