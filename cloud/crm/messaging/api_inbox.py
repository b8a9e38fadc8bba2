"""Messaging: the unified inbox routes. Signed inbound webhooks (SMS, WhatsApp, WeChat; the
signature is the credential) and, for agents, conversations: list, get, assign, close, reopen
and reply (Idempotency-Key required)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.deps import ConnDep, MarketerDep, SettingsDep
from cloud.api.problems import problem_responses
from cloud.api.routes.customers_deps import IdempotencyKeyDep
from cloud.api.schemas.limits import PG_BIGINT_MAX, RowId
from cloud.crm.messaging import inbox, tracking
from cloud.crm.messaging.api_tracking import ChannelName, channel_for, verified_body
from cloud.crm.messaging.channels.base import PermanentChannelError
from cloud.crm.messaging.errors import MessagingInvalidInputError
from cloud.crm.messaging.inbound_smtp import parse_mail
from cloud.crm.messaging.schemas import MessagePublic

router = APIRouter(tags=["messaging"])
PREFIX = "/v1/messaging"
C = PREFIX + "/conversations"


class InboundStored(BaseModel):
    """Where an inbound message went."""

    conversation_id: int
    item_id: int
    profile_id: int
    created: bool = Field(description="False: a retried delivery already stored.")


class ConversationItem(BaseModel):
    """One message of a conversation, either way."""

    id: int
    direction: Literal["in", "out"]
    channel: str
    address: str | None
    subject: str | None
    body: str
    provider_id: str | None
    in_reply_to: str | None
    outbox_id: int | None
    author: str | None
    created_at: datetime
    delivery: str | None = Field(description="A reply's outbox status (queued, sent, ...).")


class ConversationSummary(BaseModel):
    """A conversation without its messages."""

    id: int
    profile_id: int
    status: Literal["open", "closed"]
    assignee: str | None
    channel: str = Field(description="The channel the customer last wrote on (replies go there).")
    subject: str | None
    last_message_at: datetime
    created_at: datetime
    closed_at: datetime | None


class Conversation(ConversationSummary):
    """A conversation with its messages, oldest first."""

    messages: list[ConversationItem]


class Assign(BaseModel):
    """Who handles the conversation (null: nobody)."""

    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(max_length=200, pattern=r"^[^\x00]+$")


class ReplyRequest(BaseModel):
    """The agent's text."""

    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=20_000, pattern=r"^[^\x00]+$")


class ReplyOutcome(BaseModel):
    """The queued reply and the conversation with it."""

    message: MessagePublic
    conversation: Conversation


@router.post(
    PREFIX + "/inbound/{channel}",
    summary="A provider's signed inbound-message webhook",
    description="The signature is checked as for delivery webhooks (401 missing or stale, 403"
    " wrong; nothing processed). The body goes through the channel's parse_inbound (422 when"
    " it is not one); the sender is resolved to a customer and the message lands in that"
    " customer's conversation. A retried delivery is stored once.",
    responses=problem_responses(401, 403, 404),
)
async def inbound_webhook(
    channel: ChannelName, request: Request, conn: ConnDep, settings: SettingsDep
) -> InboundStored:
    """Verify, parse, thread, store."""
    body = await verified_body(request, channel)
    adapter = channel_for(settings, channel)
    try:
        msg = adapter.parse_inbound(body)
    except PermanentChannelError as exc:
        raise MessagingInvalidInputError(f"not a {channel} inbound message: {exc.detail}") from exc
    cfg = tracking.tracking_config()
    secret = cfg.secret.get_secret_value() if cfg is not None else None
    refs: list[str] = []
    recipients: list[str] = []
    if channel == "email":  # a forwarded e-mail: thread by its References and To as well
        parsed = parse_mail(body)
        refs, recipients = parsed.references, parsed.recipients
    got = inbox.receive(conn, channel, msg, references=refs, recipients=recipients, secret=secret)
    return InboundStored(
        conversation_id=got.conversation_id,
        item_id=got.item_id,
        profile_id=got.profile_id,
        created=got.created,
    )


@router.get(C, summary="Conversations, newest activity first")
def list_conversations(
    conn: ConnDep,
    _: MarketerDep,
    status: Literal["open", "closed"] | None = None,
    assignee: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=PG_BIGINT_MAX)] = None,
) -> list[ConversationSummary]:
    """Filter by status and assignee; page with `before` (the last conversation id seen)."""
    rows = inbox.list_conversations(
        conn, status=status, assignee=assignee, limit=limit, before=before
    )
    return [ConversationSummary.model_validate(r) for r in rows]


@router.get(C + "/{conversation_id}", summary="A conversation and its messages")
def get_conversation(conversation_id: RowId, conn: ConnDep, _: MarketerDep) -> Conversation:
    """404 when unknown."""
    return Conversation.model_validate(inbox.get_conversation(conn, conversation_id))


@router.post(C + "/{conversation_id}/assign", summary="Assign (or unassign) a conversation")
def assign(conversation_id: RowId, body: Assign, conn: ConnDep, _: MarketerDep) -> Conversation:
    """Set the assignee; null unassigns."""
    out = inbox.set_state(
        conn, conversation_id, assignee=body.assignee, unassign=body.assignee is None
    )
    return Conversation.model_validate(out)


@router.post(C + "/{conversation_id}/close", summary="Close a conversation")
def close(conversation_id: RowId, conn: ConnDep, _: MarketerDep) -> Conversation:
    """Closed until the customer writes again or an agent reopens it."""
    return Conversation.model_validate(inbox.set_state(conn, conversation_id, status="closed"))


@router.post(C + "/{conversation_id}/reopen", summary="Reopen a conversation")
def reopen(conversation_id: RowId, conn: ConnDep, _: MarketerDep) -> Conversation:
    """Open again."""
    return Conversation.model_validate(inbox.set_state(conn, conversation_id, status="open"))


@router.post(
    C + "/{conversation_id}/reply",
    summary="Reply on the channel the customer last wrote on (Idempotency-Key required)",
    description="Queued through the normal send path (transactional, high priority: the"
    " outbox, policy and retries apply); 202. The same key again returns the same message.",
    status_code=202,
    responses=problem_responses(404, 409),
)
def reply(
    conversation_id: RowId,
    body: ReplyRequest,
    conn: ConnDep,
    who: MarketerDep,
    key: IdempotencyKeyDep,
) -> ReplyOutcome:
    """Queue the reply once per key."""
    out = inbox.reply(
        conn, conversation_id, body=body.body, author=who.subject, idempotency_key=key
    )
    return ReplyOutcome.model_validate(out)
