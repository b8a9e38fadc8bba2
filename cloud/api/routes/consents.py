"""Consent per channel and purpose, double opt-in, and the audit trail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.problems import problem_responses
from cloud.api.schemas.crm import ConsentConfirm, ConsentPublic, ConsentUpdate
from cloud.api.schemas.limits import RowId
from cloud.crm import consent

router = APIRouter(tags=["consent"])


@router.put(
    "/v1/customers/{profile_id}/consents/{channel}/{purpose}",
    summary="Grant or withdraw consent (e-mail grants need double opt-in)",
    description="An e-mail grant stays `pending` while a confirmation token is sent to the"
    " customer's own e-mail address through the message outbox; the token is never returned.",
)
def put_consent(
    profile_id: RowId,
    channel: consent.Channel,
    purpose: consent.Purpose,
    body: ConsentUpdate,
    conn: ConnDep,
    who: MarketerDep,
) -> ConsentPublic:
    """Record a consent change with its source and proof."""
    out = consent.set_consent(
        conn,
        profile_id=profile_id,
        channel=channel,
        purpose=purpose,
        granted=body.granted,
        source=body.source,
        proof=body.proof,
        actor=who.subject,
    )
    return ConsentPublic.model_validate(out)


@router.post(
    "/v1/consents/confirm",
    summary="Confirm a double opt-in",
    responses=problem_responses(404),
)
def confirm_consent(body: ConsentConfirm, conn: ConnDep) -> ConsentPublic:
    """Called by the confirmation page with the token from the e-mail; the token is the only
    credential (it reached only the subject's address), so no API caller can confirm for them."""
    return ConsentPublic.model_validate(consent.confirm(conn, token=body.token, proof=body.proof))


@router.get("/v1/customers/{profile_id}/consents", summary="Effective consents of a customer")
def get_consents(profile_id: RowId, conn: ConnDep, _: MarketerDep) -> list[dict[str, Any]]:
    """Latest status per channel and purpose."""
    return consent.consents(conn, profile_id=profile_id)


@router.get("/v1/customers/{profile_id}/consents/events", summary="Consent audit trail")
def get_consent_events(profile_id: RowId, conn: ConnDep, _: MarketerDep) -> list[dict[str, Any]]:
    """Every change, newest first (append-only)."""
    return consent.audit_trail(conn, profile_id=profile_id)
