"""Helpers of the CRM security tests: callers and customers of a test's own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from cloud.core.security import Role

PROBLEM = "application/problem+json"


def headers(token_for: Any, role: Role, subject: str | None = None) -> dict[str, str]:
    """Auth headers of a caller with a subject of its own."""
    made: dict[str, str] = token_for(role, subject=subject or f"{role.value}-{uuid.uuid4().hex}")
    return made


def problem(response: Any, status: int) -> dict[str, Any]:
    """The problem body of a response, after checking its status and media type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def customer(client: TestClient, auth: dict[str, str], **attributes: str) -> tuple[int, str]:
    """A new customer with an e-mail address of its own: (profile id, address)."""
    email = f"sec.{uuid.uuid4().hex[:12]}@example.org"
    res = client.post(
        "/v1/customers",
        json={"identifiers": {"email": email}, "attributes": attributes},
        headers=auth,
    )
    assert res.status_code in (200, 201), res.text
    return int(res.json()["profile_id"]), email


def touchpoint(email: str, **over: Any) -> dict[str, Any]:
    """A touchpoint body for the customer with `email`."""
    body = {
        "channel": "web",
        "event": "product_view",
        "identifiers": {"email": email},
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    return {**body, **over}
