"""CRM exceptions; each maps onto the cloud's HTTP problem statuses."""

from __future__ import annotations

from cloud.core.errors import CloudError, ConflictError, InvalidInputError, NotFoundError


class CrmError(CloudError):
    """Base of the CRM's deliberate errors."""


class CrmInvalidInputError(InvalidInputError, CrmError):
    """Bad CRM input: a malformed identifier, an unknown currency, negative points."""

    slug = "crm-invalid-input"


class CrmNotFoundError(NotFoundError, CrmError):
    """A profile, account, reward or merge that does not exist."""


class CrmConflictError(ConflictError, CrmError):
    """The request conflicts with the current state."""


class IdempotencyKeyReusedError(CrmConflictError):
    """An idempotency key was sent again with a different request body."""

    slug = "idempotency-key-reused"
    title = "Idempotency key reused"


class InsufficientPointsError(CrmConflictError):
    """A burn, transfer or redemption asks for more points than the account holds."""

    slug = "insufficient-points"
    title = "Insufficient points"


class OutOfStockError(CrmConflictError):
    """A reward has no stock left."""

    slug = "out-of-stock"
    title = "Out of stock"
