"""Errors of the ingest package."""

from __future__ import annotations

from cloud.core.errors import AuthenticationError, CloudError


class IngestError(CloudError):
    """Base of ingest failures that are not about one envelope (those are dead-lettered)."""

    slug = "ingest-error"
    title = "Ingest error"


class DeviceAuthError(AuthenticationError):
    """A device credential or token is missing, unknown or not a device's."""
