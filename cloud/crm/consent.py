"""Consent and preferences per channel and purpose (GDPR/CCPA), with source, time and proof.

E-mail marketing needs double opt-in: granting it leaves the consent `pending` until `confirm` is
called with a one-time confirmation token. The token goes only to the subject: only its hash is
stored on the consent, and the token itself is written, in the same transaction, to the message
outbox (`crm_message_outbox`, template `consent_confirmation`) addressed to the person's e-mail,
for the sender to deliver; nobody calling the API ever sees it. It expires after CONFIRM_TTL.
Every change is appended to `crm_consent_events`, which refuses updates and deletes.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg

from cloud.crm.errors import CrmInvalidInputError, CrmNotFoundError
from cloud.db.repositories import crm_consent as repo
from cloud.db.repositories import crm_identity as id_repo

Conn = psycopg.Connection[Any]
#: How long a double opt-in confirmation token stays valid.
CONFIRM_TTL = timedelta(days=7)
#: The outbox template of a confirmation request.
CONFIRM_TEMPLATE = "consent_confirmation"


class Channel(StrEnum):
    """Channels a person can be contacted on."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WHATSAPP = "whatsapp"
    WECHAT = "wechat"
    PHONE = "phone"
    POST = "post"


class Purpose(StrEnum):
    """What the data or contact is used for."""

    MARKETING = "marketing"
    ANALYTICS = "analytics"
    PROFILING = "profiling"
    THIRD_PARTY_SHARING = "third_party_sharing"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def live_profile(conn: Conn, profile_id: int) -> int:
    """The live id of a profile (following merges); CrmNotFoundError when unknown."""
    live = id_repo.resolve_profile_id(conn, profile_id)
    if live is None:
        raise CrmNotFoundError(f"customer {profile_id} does not exist")
    return live


def _parse(channel: str, purpose: str) -> tuple[Channel, Purpose]:
    try:
        return Channel(channel), Purpose(purpose)
    except ValueError as exc:
        raise CrmInvalidInputError(
            f"unknown channel/purpose {channel!r}/{purpose!r}; channels: "
            f"{[c.value for c in Channel]}, purposes: {[p.value for p in Purpose]}"
        ) from exc


def _write(
    conn: Conn,
    key: tuple[int, str, str],
    *,
    status: str,
    source: str,
    proof: str | None,
    actor: str,
    when: datetime,
    token: str | None = None,
) -> dict[str, Any]:
    """Set the current state and append the same change to the audit trail; a `token` is stored
    as its hash only."""
    pid, channel, purpose = key
    repo.upsert_consent(
        conn,
        profile_id=pid,
        channel=channel,
        purpose=purpose,
        status=status,
        source=source,
        proof=proof,
        token_hash=_hash(token) if token else None,
        token_expires_at=when + CONFIRM_TTL if token else None,
        when=when,
    )
    repo.append_event(
        conn,
        profile_id=pid,
        channel=channel,
        purpose=purpose,
        status=status,
        source=source,
        proof=proof,
        actor=actor,
        when=when,
    )
    return {
        "profile_id": pid,
        "channel": channel,
        "purpose": purpose,
        "status": status,
        "updated_at": when.isoformat(),
    }


def _email_address(conn: Conn, profile_id: int) -> str:
    """The address a confirmation goes to: the person's newest e-mail identifier not blocked."""
    emails = [
        i
        for i in id_repo.profile_identifiers(conn, profile_id)
        if i["kind"] == "email" and not i["blocked"]
    ]
    if not emails:
        raise CrmInvalidInputError(
            f"customer {profile_id} has no e-mail address to send the double opt-in confirmation"
            " to; add one before granting e-mail consent"
        )
    return str(max(emails, key=lambda i: i["created_at"])["value"])


def _request_confirmation(
    conn: Conn, key: tuple[int, str, str], token: str, when: datetime
) -> None:
    """Queue the confirmation request for the subject's own address (read by the sender)."""
    pid, channel, purpose = key
    repo.enqueue_message(
        conn,
        profile_id=pid,
        channel=channel,
        address=_email_address(conn, pid),
        template=CONFIRM_TEMPLATE,
        payload={
            "channel": channel,
            "purpose": purpose,
            "expires_at": (when + CONFIRM_TTL).isoformat(),
        },
        secret=token,
        when=when,
    )


def set_consent(
    conn: Conn,
    *,
    profile_id: int,
    channel: str,
    purpose: str,
    granted: bool,
    source: str,
    actor: str,
    proof: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Grant or withdraw consent; an e-mail grant starts double opt-in (status `pending`)."""
    ch, pu = _parse(channel, purpose)
    if not source.strip():
        raise CrmInvalidInputError("source is required (where the consent was collected)")
    pid = live_profile(conn, profile_id)
    current = repo.lock_consent(conn, pid, ch.value, pu.value)
    token: str | None = None
    status = "granted" if granted else "denied"
    if granted and ch is Channel.EMAIL and (current is None or current["status"] != "granted"):
        status, token = "pending", secrets.token_urlsafe(24)
    key, when = (pid, ch.value, pu.value), now or datetime.now(UTC)
    if token:
        _request_confirmation(conn, key, token, when)
    return _write(
        conn,
        key,
        status=status,
        source=source,
        proof=proof,
        actor=actor,
        when=when,
        token=token,
    )


def confirm(
    conn: Conn, *, token: str, proof: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Complete double opt-in with the token sent to the subject's address (the token is the
    only credential: whoever holds it is the subject)."""
    when = now or datetime.now(UTC)
    row = repo.by_token_hash(conn, _hash(token))
    expires = row["token_expires_at"] if row is not None else None
    if row is None or row["status"] != "pending" or (expires is not None and expires <= when):
        raise CrmNotFoundError("unknown, expired or already used confirmation token")
    key = (int(row["profile_id"]), str(row["channel"]), str(row["purpose"]))
    return _write(
        conn,
        key,
        status="granted",
        source="double_opt_in",
        proof=proof or row["proof"],
        actor="subject",
        when=when,
    )


def consents(conn: Conn, *, profile_id: int) -> list[dict[str, Any]]:
    """Effective consents of a person (over every profile merged into it)."""
    pid = live_profile(conn, profile_id)
    return repo.consents_of(conn, id_repo.member_profile_ids(conn, pid))


def audit_trail(conn: Conn, *, profile_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """Every consent change of a person, newest first."""
    pid = live_profile(conn, profile_id)
    return repo.events_of(conn, id_repo.member_profile_ids(conn, pid), limit)
