"""The channel port: send, parse a delivery receipt, parse an inbound message; typed errors and
the registry that builds an adapter from its config's `type` field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict


class ChannelError(Exception):
    """Base of the errors a channel adapter raises; vendor errors are translated into these."""

    transient = False

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TransientChannelError(ChannelError):
    """The provider may accept the same message later (timeout, 5xx, connection lost)."""

    transient = True


class RateLimitedError(TransientChannelError):
    """The provider asked us to slow down; retry no sooner than `retry_after_s`."""

    def __init__(self, detail: str, *, retry_after_s: float) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class PermanentChannelError(ChannelError):
    """The provider will never accept this message as it is; retrying is pointless."""


class InvalidAddressError(PermanentChannelError):
    """The address or number is malformed or does not exist."""


class TemplateNotApprovedError(PermanentChannelError):
    """The provider requires a pre-approved template and this one is not (WhatsApp, WeChat)."""


class ReceiptStatus(StrEnum):
    """What a delivery receipt says happened to a message."""

    DELIVERED = "delivered"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    READ = "read"


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message for one recipient, ready for a channel."""

    message_id: int
    address: str
    body: str
    subject: str | None = None
    html: str | None = None
    profile_id: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryReceipt:
    """A provider's report about a message it accepted earlier."""

    provider_id: str
    status: ReceiptStatus
    occurred_at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class InboundMessage:
    """A message a customer sent us."""

    address: str
    body: str
    provider_id: str
    in_reply_to: str | None = None
    subject: str | None = None


@runtime_checkable
class Channel(Protocol):
    """A way to reach a customer. `send` returns the provider's message id.

    `idempotent` says whether the provider drops a second send of the same `message_id` (then a
    send whose outcome is unknown may be retried; otherwise it never is, to rule out duplicates).
    """

    name: str
    idempotent: bool

    def send(self, message: OutboundMessage) -> str:
        """Hand the message to the provider; its id on success, a ChannelError otherwise."""
        ...

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """Read a provider's delivery receipt; PermanentChannelError when it is not one."""
        ...

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """Read a message a customer sent; PermanentChannelError when it is not one."""
        ...


class ChannelConfig(BaseModel):
    """Base of every adapter's config; `type` picks the adapter in the registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str


C = TypeVar("C", bound=ChannelConfig)
Factory = Callable[[Any, Any], Channel]
_REGISTRY: dict[str, tuple[type[ChannelConfig], Factory]] = {}


def register(
    type_name: str, config_cls: type[C]
) -> Callable[[Callable[[C, Any], Channel]], Callable[[C, Any], Channel]]:
    """Register an adapter factory `(config, context) -> Channel` under `type_name`."""

    def wrap(factory: Callable[[C, Any], Channel]) -> Callable[[C, Any], Channel]:
        _REGISTRY[type_name] = (config_cls, factory)
        return factory

    return wrap


def registered_types() -> list[str]:
    """The `type` values adapters are registered under."""
    _load_builtin()
    return sorted(_REGISTRY)


def parse_config(raw: dict[str, Any]) -> ChannelConfig:
    """Validate a channel config with the model its `type` names; ValueError naming the type."""
    _load_builtin()
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise ValueError(f"unknown channel type {kind!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[kind][0].model_validate(raw)


def build_channel(config: ChannelConfig, context: Any = None) -> Channel:
    """The adapter for `config`; `context` carries what some adapters need (a database pool)."""
    _load_builtin()
    return _REGISTRY[config.type][1](config, context)


def _load_builtin() -> None:
    # Importing the adapter modules registers them; done lazily so base.py has no cycle.
    from cloud.crm.messaging.channels import (  # noqa: F401
        aliyun,
        apns,
        email,
        fcm,
        inapp,
        twilio,
        webpush,
        wechat,
        whatsapp,
    )
