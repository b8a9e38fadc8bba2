"""The in-app inbox: a per-customer table the app polls; sending is an idempotent insert."""

from __future__ import annotations

from typing import Any, Literal

import psycopg

from cloud.crm.messaging.channels.base import (
    ChannelConfig,
    DeliveryReceipt,
    InboundMessage,
    OutboundMessage,
    PermanentChannelError,
    TransientChannelError,
    register,
)


class InAppConfig(ChannelConfig):
    """The in-app inbox needs no provider settings."""

    type: Literal["inapp"] = "inapp"


class InAppChannel:
    """Writes into crm_msg_inbox on its own autocommit connection (its own 'provider')."""

    name = "inapp"
    idempotent = True  # one inbox row per outbox message: a second send finds the first

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: psycopg.Connection[Any] | None = None

    def send(self, message: OutboundMessage) -> str:
        """Put the message in the customer's inbox; the inbox row id is the provider id."""
        if message.profile_id is None:
            raise PermanentChannelError("an in-app message needs a customer")
        try:
            conn = self._connection()
            row = conn.execute(
                "INSERT INTO crm_msg_inbox (profile_id, message_id, title, body)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (message_id)"
                " DO UPDATE SET message_id = EXCLUDED.message_id RETURNING id",
                (message.profile_id, message.message_id, message.subject or "", message.body),
            ).fetchone()
        except psycopg.OperationalError as exc:
            self._conn = None
            raise TransientChannelError(f"inbox database unavailable: {exc}") from exc
        assert row is not None
        return f"inapp-{row[0]}"

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url, autocommit=True)
        return self._conn

    def close(self) -> None:
        """Close the inbox connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """The inbox has no provider receipts; reads are recorded by the inbox API."""
        raise PermanentChannelError("the in-app channel has no delivery receipts")

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """Customers do not write through the inbox."""
        raise PermanentChannelError("the in-app channel takes no inbound messages")


@register("inapp", InAppConfig)
def _inapp(_config: InAppConfig, context: Any) -> InAppChannel:
    if not isinstance(context, str):
        raise ValueError("the in-app channel needs the database URL as its context")
    return InAppChannel(context)
