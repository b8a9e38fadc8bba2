"""Touchpoints (web, app, store visit, e-mail/SMS engagement, support) attached to profiles
through identity resolution."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from cloud.crm import lifecycle
from cloud.crm.errors import CrmConflictError, CrmInvalidInputError
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.identity.service import IdentifierInput, ingest_event_record
from cloud.db.repositories import crm_events as repo

Conn = psycopg.Connection[Any]
CHANNELS = ("web", "app", "pos", "store_visit", "email", "sms", "support")
_SOURCE = {"store_visit": "pos", "email": "web", "sms": "web"}


@dataclass(frozen=True)
class TouchpointResult:
    """What record_touchpoint did."""

    touchpoint_id: int
    profile_id: int
    created: bool
    lifecycle_stage: str | None


def record_touchpoint(
    conn: Conn,
    *,
    channel: str,
    event: str,
    identifiers: IdentifierInput,
    occurred_at: datetime,
    store_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    external_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    rules: IdentityRules | None = None,
) -> TouchpointResult:
    """Store a touchpoint for the person its identifiers resolve to (idempotent by
    channel + external_id) and advance the lifecycle."""
    if channel not in CHANNELS:
        raise CrmInvalidInputError(f"unknown channel {channel!r}; known: {list(CHANNELS)}")
    if not event or len(event) > 64:
        raise CrmInvalidInputError("event must be 1-64 characters")
    if occurred_at.tzinfo is None:
        raise CrmInvalidInputError("occurred_at must be timezone-aware")
    if store_id is not None and not repo.store_exists(conn, store_id):
        raise CrmInvalidInputError(f"unknown store {store_id!r}")
    if external_id is not None and (found := repo.find_touchpoint(conn, channel, external_id)):
        return TouchpointResult(int(found["id"]), int(found["profile_id"]), False, None)
    with conn.transaction():  # a savepoint when the caller has a transaction open
        who = ingest_event_record(
            conn,
            source=_SOURCE.get(channel, channel),
            identifiers=identifiers,
            attributes=attributes,
            observed_at=occurred_at,
            rules=rules,
        )
        tp = repo.insert_touchpoint(
            conn,
            profile_id=who.profile_id,
            record_id=who.record_id,
            channel=channel,
            event=event,
            store_id=store_id,
            occurred_at=occurred_at,
            properties=dict(properties or {}),
            external_id=external_id,
        )
        if tp is None:
            raise CrmConflictError(f"touchpoint {channel}/{external_id} was stored concurrently")
        stage = lifecycle.advance_profile(
            conn, profile_id=who.profile_id, store_id=store_id, when=occurred_at
        )
    return TouchpointResult(tp, who.profile_id, True, stage)
