"""Automation's exceptions (each maps to a problem response)."""

from __future__ import annotations

from cloud.core.errors import ConflictError, InvalidInputError, NotFoundError


class AutomationInvalidError(InvalidInputError):
    """A definition or request breaks a rule; `errors` names the nodes."""


class AutomationNotFoundError(NotFoundError):
    """No such workflow, version or execution."""


class AutomationConflictError(ConflictError):
    """Not possible in the workflow's current state."""
