"""The messaging hub's errors, mapped onto the API's problem statuses."""

from __future__ import annotations

from cloud.core.errors import ConflictError, InvalidInputError, NotFoundError


class TemplateError(InvalidInputError):
    """A template that does not compile or render: syntax, undefined variable, too long."""

    slug = "template-error"
    title = "Template error"


class MessagingInvalidInputError(InvalidInputError):
    """A send request that cannot be honoured as asked (unknown channel, no address)."""

    slug = "messaging-invalid-input"


class MessagingNotFoundError(NotFoundError):
    """A template, message or customer that does not exist."""


class MessagingConflictError(ConflictError):
    """An idempotency key reused with another request, or a duplicate template."""
