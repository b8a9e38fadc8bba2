"""Exceptions of the predictive-analytics package, mapped to problem responses by the API."""

from __future__ import annotations

from cloud.core.errors import CloudError, ConflictError, InvalidInputError, NotFoundError


class MLError(CloudError):
    """Base of every predictive-analytics error that is not the caller's fault."""

    slug = "ml-error"
    title = "Predictive analytics error"


class InvalidEventError(InvalidInputError):
    """An event (transaction, visit, engagement) is invalid and must never reach a model."""

    slug = "invalid-event"
    title = "Invalid event"


class ModelVersionConflictError(ConflictError):
    """Another process saved the model first; reload and retry."""

    slug = "model-version-conflict"
    title = "Model version conflict"


class ModelNotFoundError(NotFoundError):
    """No model of that name has been trained or persisted yet."""

    slug = "model-not-found"
    title = "Model not found"


class FitError(MLError):
    """A maximum-likelihood fit failed to converge or had too little data."""

    slug = "fit-error"
    title = "Model fit failed"
    status = 422
