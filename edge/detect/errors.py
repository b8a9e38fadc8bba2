"""Errors of the detection stage."""

from __future__ import annotations

from edge.errors import EdgeError


class DetectError(EdgeError):
    """Base class of detection errors."""


class ModelManifestError(DetectError):
    """A model manifest is missing, unreadable or invalid."""


class ModelFileError(DetectError):
    """A model's weights are missing or their sha256 differs from the manifest."""


class ModelFormatError(DetectError):
    """A model's inputs or outputs do not have the shape its manifest or contract promises."""
