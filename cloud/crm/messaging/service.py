"""The hub's entry points for other code and the API: queue a message, read its status, the
in-app inbox, unsubscribe and delivery receipts. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import psycopg

from cloud.crm.idempotency import request_hash
from cloud.crm.messaging import repository as repo
from cloud.crm.messaging import selection
from cloud.crm.messaging.channels.base import DeliveryReceipt, ReceiptStatus
from cloud.crm.messaging.errors import (
    MessagingConflictError,
    MessagingInvalidInputError,
    MessagingNotFoundError,
)
from cloud.crm.messaging.policy import PolicyConfig, Priority, Purpose
from cloud.db.repositories import crm_identity as id_repo

Conn = psycopg.Connection[Any]

#: The identifier kinds that address each channel, best first.
ADDRESS_KINDS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("phone",),
    "whatsapp": ("whatsapp_id", "phone"),
    "wechat": ("wechat_id",),
    "push": ("app_user_id",),
}


def _live(conn: Conn, profile_id: int) -> int:
    live = id_repo.resolve_profile_id(conn, profile_id)
    if live is None:
        raise MessagingNotFoundError(f"customer {profile_id} does not exist")
    return live


def live_profile(conn: Conn, profile_id: int) -> int:
    """The live id of a customer (following merges); not found: MessagingNotFoundError."""
    return _live(conn, profile_id)


def address_of(conn: Conn, profile_id: int, channel: str) -> str:
    """The person's newest unblocked identifier for the channel; in-app needs none."""
    if channel == "inapp":
        return f"profile:{profile_id}"
    kinds = ADDRESS_KINDS.get(channel)
    if kinds is None:
        raise MessagingInvalidInputError(f"unknown channel {channel!r}")
    idents = [i for i in id_repo.profile_identifiers(conn, profile_id) if not i["blocked"]]
    for kind in kinds:
        found = [i for i in idents if i["kind"] == kind]
        if found:
            return str(max(found, key=lambda i: i["created_at"])["value"])
    raise MessagingInvalidInputError(
        f"customer {profile_id} has no {' or '.join(kinds)} to send {channel} messages to"
    )


def send(
    conn: Conn,
    *,
    profile_id: int,
    channel: str | None,
    template: str,
    variables: dict[str, Any],
    purpose: Purpose,
    priority: Priority,
    locale: str | None,
    idempotency_key: str,
    best_time: bool = False,
    configured: Collection[str] | None = None,
    policy: PolicyConfig | None = None,
) -> dict[str, Any]:
    """Queue a message once per idempotency key; the policy runs when it leaves.

    No `channel`: the bandit picks one (selection.py); `best_time`: it also picks the local send
    hour (`not_before`). A retry with the same key and body returns the first message
    (`replayed`); the same key with another body is a conflict.
    """
    live = _live(conn, profile_id)
    request = {
        "profile_id": live, "channel": channel, "template": template, "variables": variables,
        "purpose": purpose, "priority": priority, "locale": locale,
    }  # fmt: skip
    if best_time:
        request["best_time"] = True
    digest = request_hash(request)
    chosen = selection.plan(
        conn, profile_id=live, channel=channel, template=template, purpose=purpose,
        best_time=best_time, address=address_of, configured=configured, policy=policy,
    )  # fmt: skip
    message_id, created = repo.enqueue(
        conn,
        profile_id=live,
        channel=chosen.channel,
        address=address_of(conn, live, chosen.channel),
        not_before=chosen.not_before,
        template=template,
        payload={**variables, "_request": digest},
        purpose=purpose,
        priority=priority,
        locale=locale,
        idempotency_key=idempotency_key,
    )
    row = repo.get_message(conn, message_id)
    assert row is not None
    if not created and row["payload"].get("_request") != digest:
        raise MessagingConflictError(
            f"Idempotency-Key {idempotency_key!r} was already used with a different request"
        )
    if created:
        selection.record(
            conn, message_id=message_id, profile_id=live, purpose=purpose, chosen=chosen,
            policy=policy,
        )  # fmt: skip
    return {**public(row), "replayed": not created}


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The caller's view of a message (no secret, no request digest)."""
    return {
        "id": row["id"],
        "profile_id": row["profile_id"],
        "channel": row["channel"],
        "template": row["template"],
        "purpose": row["purpose"],
        "priority": row["priority"],
        "locale": row["locale"],
        "status": row["status"],
        "attempts": row["attempts"],
        "not_before": row["not_before"],
        "provider_id": row["provider_id"],
        "last_error": row["last_error"],
        "created_at": row["created_at"],
        "sent_at": row["sent_at"],
    }


def status(conn: Conn, message_id: int) -> dict[str, Any]:
    """A message's state and every decision taken about it."""
    row = repo.get_message(conn, message_id)
    if row is None:
        raise MessagingNotFoundError(f"message {message_id} does not exist")
    return {**public(row), "decisions": repo.decisions(conn, message_id)}


def inbox(conn: Conn, *, profile_id: int, limit: int, before: int | None) -> list[dict[str, Any]]:
    """A customer's in-app messages, newest first (over merged profiles)."""
    live = _live(conn, profile_id)
    return repo.inbox(conn, id_repo.member_profile_ids(conn, live), limit, before)


def unsubscribe(conn: Conn, *, profile_id: int, channel: str) -> None:
    """Suppress marketing on a channel (one-click unsubscribe)."""
    repo.suppress(conn, _live(conn, profile_id), channel, "unsubscribe")


def apply_receipt(conn: Conn, receipt: DeliveryReceipt) -> bool:
    """Suppress after a hard bounce or a complaint; whether the receipt named a message of ours."""
    row = repo.message_by_provider_id(conn, receipt.provider_id)
    if row is None:
        return False
    reason = {ReceiptStatus.HARD_BOUNCE: "hard_bounce", ReceiptStatus.COMPLAINT: "complaint"}
    if receipt.status in reason:
        repo.suppress(conn, row["profile_id"], row["channel"], reason[receipt.status])
    repo.record_decision(
        conn, row["id"], f"receipt:{receipt.status.value}", receipt.detail or "-", _now(conn)
    )
    return True


def _now(conn: Conn) -> Any:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


#: A reviewer's verdict on a message in doubt -> its new status.
REVIEW_OUTCOMES = {"resend": "queued", "delivered": "sent", "drop": "failed"}


def review(conn: Conn, *, message_id: int, outcome: str, note: str, actor: str) -> dict[str, Any]:
    """Resolve an `uncertain` message after checking with the provider: `resend` (it never
    arrived), `delivered` (it did) or `drop`; recorded with the reviewer. 409 when the message
    is not in doubt."""
    reason = f"reviewed by {actor}: {outcome}" + (f" ({note})" if note else "")
    if not repo.resolve_in_doubt(
        conn, message_id, status=REVIEW_OUTCOMES[outcome], reason=reason, at=_now(conn)
    ):
        row = repo.get_message(conn, message_id)
        if row is None:
            raise MessagingNotFoundError(f"message {message_id} does not exist")
        raise MessagingConflictError(
            f"message {message_id} is not in doubt (status {row['status']!r})"
        )
    return status(conn, message_id)


def in_doubt(conn: Conn, *, after: int, limit: int) -> list[dict[str, Any]]:
    """Messages waiting for a review, by id."""
    return [public(r) for r in repo.messages_in_doubt(conn, after=after, limit=limit)]
