"""Root of the edge package's exception hierarchy."""


class EdgeError(Exception):
    """Base class for every error the edge agent raises on purpose."""
