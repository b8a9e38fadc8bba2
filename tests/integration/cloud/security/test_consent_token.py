"""Double opt-in: the confirmation token reaches only the subject (through the message outbox),
is stored as a hash, expires, and is the only way to confirm."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from tests.integration.cloud.security.crm_helpers import customer, headers, problem

MARKETER = "consent-marketer@hq"


@pytest.fixture(scope="module")
def marketer(token_for: Any) -> dict[str, str]:
    """A headquarters marketer."""
    return headers(token_for, Role.HQ_MARKETER, subject=MARKETER)


def _outbox(database_url: str, profile_id: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT channel, address, template, payload, secret FROM crm_message_outbox"
            " WHERE profile_id = %s ORDER BY id",
            (profile_id,),
        ).fetchall()


def _grant(client: TestClient, auth: dict[str, str], pid: int) -> Any:
    return client.put(
        f"/v1/customers/{pid}/consents/email/marketing",
        json={"granted": True, "source": "web-form", "proof": "ip 192.0.2.1"},
        headers=auth,
    )


def test_grant_never_returns_the_token_which_goes_to_the_subjects_address(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    """The PUT used to return the token to the marketer, who could then confirm as 'subject'."""
    pid, email = customer(client, marketer)
    res = _grant(client, marketer, pid)
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "pending" and "confirmation_token" not in res.json()
    [(channel, address, template, payload, token)] = _outbox(database_url, pid)
    assert (channel, address, template) == ("email", email, "consent_confirmation")
    assert payload["purpose"] == "marketing" and token and token not in res.text
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT token_hash FROM crm_consents WHERE profile_id = %s AND channel = 'email'",
            (pid,),
        ).fetchone()
    assert stored == (hashlib.sha256(token.encode()).hexdigest(),)
    anon = client.post("/v1/consents/confirm", json={"token": token, "proof": "clicked"})
    assert anon.status_code == 200, anon.text
    assert anon.json()["status"] == "granted"
    trail = client.get(f"/v1/customers/{pid}/consents/events", headers=marketer).json()
    assert [(e["status"], e["actor"]) for e in trail] == [
        ("granted", "subject"),
        ("pending", MARKETER),
    ]
    again = client.post("/v1/consents/confirm", json={"token": token})
    problem(again, 404)


def test_a_guessed_or_expired_token_confirms_nothing(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    pid, _ = customer(client, marketer)
    assert _grant(client, marketer, pid).status_code == 200
    problem(client.post("/v1/consents/confirm", json={"token": uuid.uuid4().hex}), 404)
    [*_, (_, _, _, _, token)] = _outbox(database_url, pid)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE crm_consents SET token_expires_at = now() - interval '1 second'"
            " WHERE profile_id = %s",
            (pid,),
        )
    assert (
        "expired"
        in problem(client.post("/v1/consents/confirm", json={"token": token}), 404)["detail"]
    )
    states = client.get(f"/v1/customers/{pid}/consents", headers=marketer).json()
    assert [s["status"] for s in states] == ["pending"]


def test_a_new_grant_replaces_the_token_and_a_withdrawal_voids_it(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    pid, _ = customer(client, marketer)
    _grant(client, marketer, pid)
    _grant(client, marketer, pid)
    first, second = (row[4] for row in _outbox(database_url, pid))
    problem(client.post("/v1/consents/confirm", json={"token": first}), 404)
    client.put(
        f"/v1/customers/{pid}/consents/email/marketing",
        json={"granted": False, "source": "unsubscribe-link"},
        headers=marketer,
    )
    problem(client.post("/v1/consents/confirm", json={"token": second}), 404)


def test_email_grant_without_an_address_is_422_and_changes_nothing(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    res = client.post(
        "/v1/customers",
        json={"identifiers": {"app_user_id": f"app-{uuid.uuid4().hex}"}},
        headers=marketer,
    )
    pid = res.json()["profile_id"]
    assert "no e-mail address" in problem(_grant(client, marketer, pid), 422)["detail"]
    assert client.get(f"/v1/customers/{pid}/consents", headers=marketer).json() == []
    assert _outbox(database_url, pid) == []
