"""Event fixtures: write-key sources on the session database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from cloud.crm.events import sources
from cloud.crm.events.repository import Source


@pytest.fixture
def make_source(pg_pool: Any) -> Callable[..., tuple[Source, str]]:
    """Create a source with a unique id: make_source(plan_mode=..., consent_required=...)."""

    def _make(**kwargs: Any) -> tuple[Source, str]:
        kwargs.setdefault("consent_required", False)
        with pg_pool.connection() as conn:
            return sources.create_source(
                conn, source_id=f"src-{uuid.uuid4().hex[:10]}", name="Test", **kwargs
            )

    return _make


def basic(key: str) -> tuple[str, str]:
    """httpx auth for a write key (HTTP Basic, empty password)."""
    return (key, "")
