"""Customers: create/resolve records, list, the golden record, lookup, journey, merges."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.problems import problem_responses
from cloud.api.routes.customers_deps import RulesDep
from cloud.api.schemas.crm import (
    CustomerCreate,
    CustomerPublic,
    CustomerSummary,
    MergePublic,
    ResolvedPublic,
)
from cloud.api.schemas.limits import PG_BIGINT_MAX, RowId
from cloud.crm.consent import live_profile
from cloud.crm.errors import CrmNotFoundError
from cloud.crm.identity.normalize import normalize_identifier
from cloud.crm.identity.service import ingest_record
from cloud.crm.profiles import golden_record
from cloud.db.repositories import crm_events as ev_repo
from cloud.db.repositories import crm_identity as id_repo

#: `:int` keeps /import and /export (other methods) from matching a profile id: their wrong
#: methods answer 405, not a 422 about the id.
router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Add a customer record (resolved by identity)"
)
def create_customer(
    body: CustomerCreate, conn: ConnDep, _: MarketerDep, rules: RulesDep
) -> ResolvedPublic:
    """Store a source record; records sharing a strong identifier become one person."""
    res = ingest_record(
        conn,
        source=body.source,
        identifiers=body.identifiers,
        attributes=body.attributes.model_dump(exclude_none=True, mode="json"),
        source_key=body.source_key,
        rules=rules,
    )
    return ResolvedPublic(
        record_id=res.record_id,
        profile_id=res.profile_id,
        created_profile=res.created_profile,
        merged_profiles=res.merged_profiles,
    )


@router.get("", summary="List customers (keyset pagination by id)")
def list_customers(
    conn: ConnDep,
    _: MarketerDep,
    after_id: Annotated[
        int, Query(ge=0, le=PG_BIGINT_MAX, description="Return ids greater than this.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    stage: Annotated[
        str | None, Query(max_length=64, description="Only this lifecycle stage.")
    ] = None,
) -> list[CustomerSummary]:
    """Live profiles ordered by id."""
    rows = id_repo.list_profiles(conn, after_id=after_id, limit=limit, stage=stage)
    return [CustomerSummary.model_validate(r) for r in rows]


@router.get(
    "/lookup",
    summary="Find the customer holding an identifier",
    responses=problem_responses(404),
)
def lookup(
    conn: ConnDep,
    _: MarketerDep,
    rules: RulesDep,
    kind: Annotated[str, Query(max_length=32, description="Identifier kind.")],
    value: Annotated[
        str, Query(max_length=320, description="Raw identifier value (normalised here).")
    ],
) -> CustomerPublic:
    """The golden record of the person with this identifier."""
    normal = normalize_identifier(kind, value, default_region=rules.default_phone_region)
    pid = id_repo.profile_by_identifier(conn, kind, normal)
    if pid is None:
        raise CrmNotFoundError(f"no customer has {kind} {normal}")
    return CustomerPublic.model_validate(golden_record(conn, profile_id=pid))


@router.get("/{profile_id:int}", summary="The golden record (360-degree view)")
def get_customer(profile_id: RowId, conn: ConnDep, _: MarketerDep) -> CustomerPublic:
    """A merged (old) id answers with the surviving profile; see `requested_id`."""
    return CustomerPublic.model_validate(golden_record(conn, profile_id=profile_id))


@router.get("/{profile_id:int}/journey", summary="Lifecycle transitions of a customer")
def journey(profile_id: RowId, conn: ConnDep, _: MarketerDep) -> list[dict[str, Any]]:
    """Every stage transition with its reason, oldest first."""
    pid = live_profile(conn, profile_id)
    return ev_repo.journey(conn, id_repo.member_profile_ids(conn, pid))


@router.get("/{profile_id:int}/merges", summary="Merge history of a customer")
def merges(profile_id: RowId, conn: ConnDep, _: MarketerDep) -> list[MergePublic]:
    """Merges this profile took part in, newest first."""
    if id_repo.get_profile(conn, profile_id) is None:
        raise CrmNotFoundError(f"customer {profile_id} does not exist")
    return [MergePublic.model_validate(m) for m in id_repo.merges_of_profile(conn, profile_id)]
