"""Identity of event senders: identify/alias calls resolve a profile through the CRM's identity
package; anonymous ids and user ids then map to that profile, past events included."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.events import repository as repo
from cloud.crm.identity.normalize import normalize_identifier
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.identity.service import ingest_record
from cloud.crm.identity.survivorship import ProfileAttributes, validate_attributes

Conn = psycopg.Connection[Any]
#: Traits that are identifiers of the person (trait name -> identifier kind).
IDENTIFIER_TRAITS = {"email": "email", "phone": "phone", "loyalty_number": "loyalty_number"}
_ATTRIBUTE_TRAITS = frozenset(ProfileAttributes.model_fields)


@dataclass(frozen=True)
class IdentifyResult:
    """The profile an identify resolved to, and the traits that could not be used."""

    profile_id: int | None
    bad_traits: list[tuple[str, str]]  # (field, message)


def identifiers_of(
    user_id: str | None, traits: Mapping[str, Any], rules: IdentityRules
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(kind, raw value) identifiers of an identify call, and (field, message) of bad ones."""
    found: list[tuple[str, str]] = []
    bad: list[tuple[str, str]] = []
    candidates = [("userId", "app_user_id", user_id)]
    candidates += [(f"traits.{t}", kind, traits.get(t)) for t, kind in IDENTIFIER_TRAITS.items()]
    for field, kind, raw in candidates:
        if raw is None or raw == "":
            continue
        try:
            normalize_identifier(kind, str(raw), default_region=rules.default_phone_region)
        except CrmInvalidInputError as exc:
            bad.append((field, exc.detail))
            continue
        found.append((kind, str(raw)))
    return found, bad


def identify(
    conn: Conn,
    *,
    source_id: str,
    anonymous_id: str | None,
    user_id: str | None,
    traits: Mapping[str, Any],
    at: datetime,
    rules: IdentityRules,
) -> IdentifyResult:
    """Resolve the person behind an identify call and tie its anonymous id (and that id's
    stored events) to the profile; no usable identifier leaves it anonymous."""
    idents, bad = identifiers_of(user_id, traits, rules)
    if not idents:
        return IdentifyResult(None, bad)
    attrs_raw = {k: v for k, v in traits.items() if k in _ATTRIBUTE_TRAITS}
    try:
        validate_attributes(attrs_raw)
    except CrmInvalidInputError as exc:
        bad.append(("traits", exc.detail))
        attrs_raw = {}
    key = f"user:{user_id}" if user_id else f"anon:{anonymous_id}"
    resolved = ingest_record(
        conn,
        source=f"events:{source_id}",
        identifiers=idents,
        attributes=attrs_raw,
        source_key=key[:500],
        observed_at=at,
        rules=rules,
    )
    if anonymous_id:
        link(conn, source_id, anonymous_id, resolved.profile_id, user_id, at)
    return IdentifyResult(resolved.profile_id, bad)


def link(
    conn: Conn, source_id: str, anonymous_id: str, profile_id: int, user_id: str | None,
    at: datetime,
) -> None:  # fmt: skip
    """Tie an anonymous id to a profile and give it the id's events stored so far."""
    repo.link_anonymous(
        conn, anonymous_id=anonymous_id, profile_id=profile_id, user_id=user_id,
        source_id=source_id, at=at,
    )  # fmt: skip
    repo.backfill_profile(conn, anonymous_id, profile_id)


def profiles_of_user_ids(
    conn: Conn, user_ids: Sequence[str], rules: IdentityRules
) -> dict[str, int]:
    """user id -> profile id for the user ids the identity graph knows (as app_user_id)."""
    normal: dict[str, str] = {}
    for uid in set(user_ids):
        try:
            normal[uid] = normalize_identifier(
                "app_user_id", uid, default_region=rules.default_phone_region
            )
        except CrmInvalidInputError:
            continue
    found = repo.profiles_of_identifiers(conn, "app_user_id", sorted(set(normal.values())))
    return {uid: found[v] for uid, v in normal.items() if v in found}
