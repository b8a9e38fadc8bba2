"""The unified inbox: one conversation per customer across every channel.

An inbound message (e-mail from the SMTP server, SMS/WhatsApp/WeChat from webhooks) is tied to
a conversation by, in order: the reply token of a reply+<token>@domain address; the
In-Reply-To/References ids of one of our messages (<mp-<outbox id>@...>) or of an earlier
inbound message; the sender's address, resolved to a customer by the identity code (a new
customer when nobody has it). A reply goes out on the channel the customer last wrote on through
the hub's normal send path (service.send, purpose transactional), so policy and outbox apply.
Callers own the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import Counter
from psycopg.rows import dict_row

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.identity import service as identity
from cloud.crm.messaging import service, tracking
from cloud.crm.messaging.channels.base import InboundMessage
from cloud.crm.messaging.errors import (
    MessagingConflictError,
    MessagingInvalidInputError,
    MessagingNotFoundError,
)
from cloud.db.repositories import crm_identity as id_repo

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]

INBOUND = Counter(
    "mallpulse_messaging_inbound", "Inbound messages stored, by channel and how threaded.",
    ["channel", "thread"],
)  # fmt: skip

#: The identifier kind a sender's address is, per channel.
SENDER_KIND = {"email": "email", "sms": "phone", "whatsapp": "whatsapp_id", "wechat": "wechat_id"}
IDENTITY_SOURCE = "messaging-inbound"
REPLY_TEMPLATE = "inbox_reply"
#: Keywords that unsubscribe from marketing on SMS and WhatsApp (carrier convention).
STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "退订"})
_OUR_ID = re.compile(r"<mp-(\d{1,18})@[^>]+>")
_REPLY_ADDRESS = re.compile(r"reply\+([a-z0-9]{1,60})@", re.IGNORECASE)


# --- reply tokens -------------------------------------------------------------------------


def reply_token(conversation_id: int, secret: str) -> str:
    """The token of a conversation's reply address: its id and a MAC, lower-case, no dots."""
    mac = hmac.new(secret.encode(), f"reply:{conversation_id}".encode(), hashlib.sha256)
    return f"c{conversation_id}x{mac.hexdigest()[:16]}"


def reply_address(conversation_id: int, secret: str, domain: str) -> str:
    """reply+<token>@domain: replies to it thread into the conversation whatever the sender."""
    return f"reply+{reply_token(conversation_id, secret)}@{domain}"


def conversation_of_token(token: str, secret: str) -> int | None:
    """The conversation a reply token names; None when forged or malformed."""
    m = re.fullmatch(r"c(\d{1,18})x([0-9a-f]{16})", token.lower())
    if m is None:
        return None
    cid = int(m.group(1))
    return cid if hmac.compare_digest(reply_token(cid, secret), token.lower()) else None


def token_in(addresses: Sequence[str]) -> str | None:
    """The reply token of the first reply+<token>@ address among `addresses`."""
    for a in addresses:
        m = _REPLY_ADDRESS.search(a)
        if m:
            return m.group(1)
    return None


# --- receiving ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """What storing an inbound message did."""

    conversation_id: int
    item_id: int
    profile_id: int
    created: bool  # False: a retried delivery of a message already stored
    thread: str  # token, reference, address


def receive(
    conn: Conn,
    channel: str,
    msg: InboundMessage,
    *,
    references: Sequence[str] = (),
    recipients: Sequence[str] = (),
    secret: str | None = None,
) -> Received:
    """Store an inbound message in its customer's conversation (reopened if closed)."""
    if channel not in SENDER_KIND:
        raise MessagingInvalidInputError(f"no inbound on channel {channel!r}")
    dup = _existing(conn, channel, msg.provider_id)
    if dup is not None:
        return Received(dup["conversation_id"], dup["id"], dup["profile_id"], False, "retry")
    conversation_id, thread = _thread(conn, msg, references, recipients, secret)
    if conversation_id is None:
        profile_id = _sender_profile(conn, channel, msg.address)
        conversation_id = _conversation_for(conn, profile_id, channel, msg.subject)
    with conn.cursor(row_factory=dict_row) as cur:
        conv = cur.execute(
            "UPDATE crm_msg_conversations SET status = 'open', closed_at = NULL,"
            " channel = %s, subject = coalesce(%s, subject), last_message_at = now()"
            " WHERE id = %s RETURNING profile_id",
            (channel, msg.subject, conversation_id),
        ).fetchone()
        assert conv is not None
        item = cur.execute(
            "INSERT INTO crm_msg_conversation_items (conversation_id, direction, channel,"
            " address, subject, body, provider_id, in_reply_to)"
            " VALUES (%s, 'in', %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (channel, provider_id) WHERE direction = 'in' DO NOTHING RETURNING id",
            (conversation_id, channel, msg.address, msg.subject, msg.body, msg.provider_id,
             msg.in_reply_to),
        ).fetchone()  # fmt: skip
    if item is None:  # a concurrent delivery of the same message won
        dup = _existing(conn, channel, msg.provider_id)
        assert dup is not None
        return Received(dup["conversation_id"], dup["id"], dup["profile_id"], False, "retry")
    profile_id = int(conv["profile_id"])
    if channel in ("sms", "whatsapp") and msg.body.strip().lower() in STOP_WORDS:
        _stop(conn, profile_id, channel)
    INBOUND.labels(channel, thread).inc()
    log.info(
        "inbound message stored",
        extra={"conversation_id": conversation_id, "item_id": item["id"], "channel": channel},
    )
    return Received(conversation_id, int(item["id"]), profile_id, True, thread)


def _existing(conn: Conn, channel: str, provider_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT i.id, i.conversation_id, c.profile_id FROM crm_msg_conversation_items i"
            " JOIN crm_msg_conversations c ON c.id = i.conversation_id"
            " WHERE i.channel = %s AND i.provider_id = %s AND i.direction = 'in'",
            (channel, provider_id),
        ).fetchone()


def _thread(
    conn: Conn,
    msg: InboundMessage,
    references: Sequence[str],
    recipients: Sequence[str],
    secret: str | None,
) -> tuple[int | None, str]:
    token = token_in(recipients)
    if token is not None and secret is not None:
        cid = conversation_of_token(token, secret)
        if cid is not None and _conversation_exists(conn, cid):
            return cid, "token"
    refs = [r for r in [msg.in_reply_to, *references] if r]
    for ref in refs:
        for found in _OUR_ID.finditer(ref):
            row = conn.execute(
                "SELECT profile_id, channel FROM crm_message_outbox WHERE id = %s",
                (int(found.group(1)),),
            ).fetchone()
            if row is not None:
                live = id_repo.resolve_profile_id(conn, int(row[0]))
                if live is not None:
                    return _conversation_for(conn, live, row[1], msg.subject), "reference"
        row = conn.execute(
            "SELECT conversation_id FROM crm_msg_conversation_items WHERE provider_id = %s"
            " ORDER BY id LIMIT 1",
            (ref.strip(),),
        ).fetchone()
        if row is not None:
            return int(row[0]), "reference"
    return None, "address"


def _conversation_exists(conn: Conn, cid: int) -> bool:
    return (
        conn.execute("SELECT 1 FROM crm_msg_conversations WHERE id = %s", (cid,)).fetchone()
        is not None
    )


def _sender_profile(conn: Conn, channel: str, address: str) -> int:
    """The customer behind a sender address, through the identity code (created if new)."""
    kind = SENDER_KIND[channel]
    try:
        resolved = identity.ingest_event_record(
            conn, source=IDENTITY_SOURCE, identifiers=[(kind, address)], attributes=None,
            observed_at=_now(conn), rules=None,
        )  # fmt: skip
    except CrmInvalidInputError as exc:
        raise MessagingInvalidInputError(
            f"the sender {address!r} is not a valid {kind}: {exc.detail}",
            errors=[{"field": "address", "message": exc.detail}],
        ) from exc
    return resolved.profile_id


def _conversation_for(conn: Conn, profile_id: int, channel: str, subject: str | None) -> int:
    """The conversation of a customer (over merged profiles), created when there is none."""
    members = id_repo.member_profile_ids(conn, profile_id) or [profile_id]
    row = conn.execute(
        "SELECT id FROM crm_msg_conversations WHERE profile_id = ANY(%s)"
        " ORDER BY profile_id = %s DESC, last_message_at DESC LIMIT 1",
        (members, profile_id),
    ).fetchone()
    if row is not None:
        return int(row[0])
    row = conn.execute(
        "INSERT INTO crm_msg_conversations (profile_id, channel, subject) VALUES (%s, %s, %s)"
        " ON CONFLICT (profile_id) DO UPDATE SET profile_id = EXCLUDED.profile_id RETURNING id",
        (profile_id, channel, subject),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _stop(conn: Conn, profile_id: int, channel: str) -> None:
    """A STOP keyword: suppress marketing on the channel; message.unsubscribed on the last
    message we sent there."""
    service.unsubscribe(conn, profile_id=profile_id, channel=channel)
    members = id_repo.member_profile_ids(conn, profile_id) or [profile_id]
    with conn.cursor(row_factory=dict_row) as cur:
        last = cur.execute(
            "SELECT id, profile_id, channel, campaign FROM crm_message_outbox"
            " WHERE profile_id = ANY(%s) AND channel = %s AND sent_at IS NOT NULL"
            " ORDER BY sent_at DESC LIMIT 1",
            (members, channel),
        ).fetchone()
    if last is not None:
        tracking.record(conn, last, "unsubscribed", detail="keyword", dedup="keyword")


# --- the agent's side ---------------------------------------------------------------------

_CONV_COLS = (
    "c.id, c.profile_id, c.status, c.assignee, c.channel, c.subject, c.last_message_at,"
    " c.created_at, c.closed_at"
)


def list_conversations(
    conn: Conn,
    *,
    status: str | None,
    assignee: str | None,
    limit: int,
    before: int | None,
) -> list[dict[str, Any]]:
    """Conversations, newest activity first; page with `before` (a conversation id seen)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_CONV_COLS} FROM crm_msg_conversations c"
            " WHERE (%(status)s::text IS NULL OR c.status = %(status)s)"
            " AND (%(assignee)s::text IS NULL OR c.assignee = %(assignee)s)"
            " AND (%(before)s::bigint IS NULL OR (c.last_message_at, c.id) <"
            "   (SELECT last_message_at, id FROM crm_msg_conversations WHERE id = %(before)s))"
            " ORDER BY c.last_message_at DESC, c.id DESC LIMIT %(limit)s",
            {"status": status, "assignee": assignee, "before": before, "limit": limit},
        ).fetchall()


def get_conversation(conn: Conn, conversation_id: int, *, lock: bool = False) -> dict[str, Any]:
    """A conversation with its messages, oldest first; 404 when unknown."""
    with conn.cursor(row_factory=dict_row) as cur:
        conv = cur.execute(
            f"SELECT {_CONV_COLS} FROM crm_msg_conversations c WHERE c.id = %s"
            + (" FOR UPDATE" if lock else ""),
            (conversation_id,),
        ).fetchone()
        if conv is None:
            raise MessagingNotFoundError(f"conversation {conversation_id} does not exist")
        conv["messages"] = cur.execute(
            "SELECT i.id, i.direction, i.channel, i.address, i.subject, i.body, i.provider_id,"
            " i.in_reply_to, i.outbox_id, i.author, i.created_at, o.status AS delivery"
            " FROM crm_msg_conversation_items i"
            " LEFT JOIN crm_message_outbox o ON o.id = i.outbox_id"
            " WHERE i.conversation_id = %s ORDER BY i.id",
            (conversation_id,),
        ).fetchall()
    return conv


def set_state(
    conn: Conn, conversation_id: int, *, status: str | None = None, assignee: str | None = None,
    unassign: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Assign/unassign, close or reopen; the conversation as it is now."""
    get_conversation(conn, conversation_id, lock=True)
    if status is not None:
        conn.execute(
            "UPDATE crm_msg_conversations SET status = %s,"
            " closed_at = CASE WHEN %s = 'closed' THEN now() END WHERE id = %s",
            (status, status, conversation_id),
        )
    if assignee is not None or unassign:
        conn.execute(
            "UPDATE crm_msg_conversations SET assignee = %s WHERE id = %s",
            (None if unassign else assignee, conversation_id),
        )
    return get_conversation(conn, conversation_id)


def reply(
    conn: Conn,
    conversation_id: int,
    *,
    body: str,
    author: str,
    idempotency_key: str,
) -> dict[str, Any]:
    """Send the agent's text on the channel the customer last wrote on (service.send,
    transactional, high priority), and add it to the conversation once per key."""
    conv = get_conversation(conn, conversation_id, lock=True)
    inbound = [m for m in conv["messages"] if m["direction"] == "in"]
    if not inbound:
        raise MessagingConflictError("the customer has not written yet: nothing to reply to")
    last = inbound[-1]
    channel = last["channel"]
    subject = last["subject"] or conv["subject"] or "Your message"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    key = f"inbox:{conversation_id}:{idempotency_key}"
    sent = service.send(
        conn, profile_id=conv["profile_id"], channel=channel, template=REPLY_TEMPLATE,
        variables={"body": body, "subject": subject, "conversation_id": conversation_id},
        purpose="transactional", priority="high", locale=None, idempotency_key=key,
    )  # fmt: skip
    if not sent["replayed"]:
        conn.execute(
            "INSERT INTO crm_msg_conversation_items (conversation_id, direction, channel,"
            " address, subject, body, outbox_id, author, in_reply_to)"
            " SELECT %s, 'out', %s, address, %s, %s, id, %s, %s FROM crm_message_outbox"
            " WHERE id = %s",
            (conversation_id, channel, subject if channel == "email" else None, body, author,
             last["provider_id"], sent["id"]),
        )  # fmt: skip
        conn.execute(
            "UPDATE crm_msg_conversations SET last_message_at = now() WHERE id = %s",
            (conversation_id,),
        )
    return {"message": sent, "conversation": get_conversation(conn, conversation_id)}


def _now(conn: Conn) -> Any:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]
