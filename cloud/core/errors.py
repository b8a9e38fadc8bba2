"""The cloud's exception hierarchy; the API maps each to an RFC 9457 problem response."""

from __future__ import annotations

from typing import Any


class CloudError(Exception):
    """Base of every deliberate cloud error; `status` is the HTTP status the API answers with."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class InvalidInputError(CloudError):
    """The request is well-formed but its content is invalid."""

    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class AuthenticationError(CloudError):
    """Missing or invalid credentials."""

    status = 401
    slug = "unauthenticated"
    title = "Authentication required"


class PermissionDeniedError(CloudError):
    """Authenticated, but not allowed to do this."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFoundError(CloudError):
    """The resource does not exist (or is not visible to the caller)."""

    status = 404
    slug = "not-found"
    title = "Not found"


class ConflictError(CloudError):
    """The request conflicts with the current state (duplicate, version clash, reused key)."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class SettingsError(CloudError):
    """A setting is missing or invalid; the message names the environment variable."""

    slug = "settings-error"
    title = "Settings error"
