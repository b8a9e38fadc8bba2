"""The CRM API end to end: customers and the golden record, transactions, touchpoints and the
lifecycle, consent with double opt-in, roles and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role


def _txn(store_id: str, ident: dict[str, str], **over: Any) -> dict[str, Any]:
    body = {
        "store_id": store_id,
        "external_id": uuid.uuid4().hex,
        "occurred_at": datetime.now(UTC).isoformat(),
        "currency": "USD",
        "total_amount": "20.00",
        "identifiers": ident,
        "items": [{"sku": "SKU-1", "category": "music", "quantity": "2", "unit_price": "10.00"}],
    }
    return {**body, **over}


def test_customer_golden_record_lookup_and_redirect(
    client: TestClient, marketer: dict[str, str], uid: str
) -> None:
    a = client.post(
        "/v1/customers",
        json={
            "identifiers": {"email": f"Kim.{uid}@Gmail.com"},
            "attributes": {"first_name": "Kim", "country": "de"},
            "source": "web",
        },
        headers=marketer,
    ).json()
    b = client.post(
        "/v1/customers",
        json={
            "identifiers": {"app_user_id": f"app-{uid}"},
            "attributes": {"city": "Berlin"},
            "source": "app",
        },
        headers=marketer,
    ).json()
    link = client.post(
        "/v1/customers",
        json={
            "identifiers": {"email": f"kim{uid}+news@googlemail.com", "app_user_id": f"app-{uid}"},
            "source": "app",
        },
        headers=marketer,
    ).json()
    assert link["merged_profiles"] == [b["profile_id"]] and link["profile_id"] == a["profile_id"]
    view = client.get(f"/v1/customers/{b['profile_id']}", headers=marketer).json()
    assert view["id"] == a["profile_id"] and view["requested_id"] == b["profile_id"]
    assert view["attributes"] == {"first_name": "Kim", "country": "DE", "city": "Berlin"}
    found = client.get(
        "/v1/customers/lookup",
        params={"kind": "email", "value": f"KIM.{uid}@gmail.com"},
        headers=marketer,
    )
    assert found.json()["id"] == a["profile_id"]
    merges = client.get(f"/v1/customers/{a['profile_id']}/merges", headers=marketer).json()
    undo = client.post(f"/v1/identities/merges/{merges[0]['id']}/undo", headers=marketer)
    assert undo.json() == {"survivor_id": a["profile_id"], "restored_id": b["profile_id"]}
    assert (
        client.get(f"/v1/customers/{b['profile_id']}", headers=marketer).json()["id"]
        == b["profile_id"]
    )


def test_transaction_earns_points_and_advances_lifecycle(
    client: TestClient, marketer: dict[str, str], store_id: str, uid: str
) -> None:
    ident = {"loyalty_number": f"LN{uid}".upper()}
    made = client.post(
        "/v1/customers", json={"identifiers": {"email": f"{uid}@shop.org"}}, headers=marketer
    ).json()
    acct = client.post(
        "/v1/loyalty/accounts",
        headers=marketer,
        json={"profile_id": made["profile_id"], "member_number": ident["loyalty_number"]},
    ).json()
    first = client.post("/v1/transactions", json=_txn(store_id, ident), headers=marketer)
    assert first.status_code == 201, first.text
    assert first.json()["profile_id"] == made["profile_id"]  # the card resolves to the person
    assert first.json()["points_earned"] == 20 + 100  # base + first-purchase bonus
    body = _txn(store_id, ident, occurred_at=(datetime.now(UTC) - timedelta(days=3)).isoformat())
    second = client.post("/v1/transactions", json=body, headers=marketer)
    repeat = client.post("/v1/transactions", json=body, headers=marketer)
    assert repeat.status_code == 200 and repeat.json() == {**second.json(), "created": False}
    journey = client.get(f"/v1/customers/{made['profile_id']}/journey", headers=marketer).json()
    assert [j["to_stage"] for j in journey][-1] == "retention"
    assert all(j["reason"] for j in journey)
    balance = client.get(f"/v1/loyalty/accounts/{acct['id']}", headers=marketer).json()["balance"]
    assert balance == 140
    tid = first.json()["transaction_id"]
    stored = client.get(f"/v1/transactions/{tid}", headers=marketer).json()
    assert stored["points_earned"] == 120 and stored["total_amount"] == "20.00"
    assert [(i["sku"], i["quantity"], i["amount"]) for i in stored["items"]] == [
        ("SKU-1", "2.000", "20.00")
    ]
    rev = client.post(
        f"/v1/transactions/{tid}/reverse", headers={**marketer, "Idempotency-Key": f"rev-{tid}"}
    )
    assert rev.json()["reversed_points"] == 120
    assert (
        client.get(f"/v1/loyalty/accounts/{acct['id']}", headers=marketer).json()["balance"] == 20
    )
    funnel = client.get(
        "/v1/lifecycle/funnel",
        headers=marketer,
        params={
            "start": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "end": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "store_id": store_id,
        },
    ).json()
    assert funnel["entered"]["purchase"] >= 1 and funnel["entered"]["awareness"] >= 1


@pytest.mark.parametrize(
    ("change", "field_or_text"),
    [
        ({"currency": "XYZ"}, "unknown currency"),
        ({"currency": "EURO"}, "unknown currency"),
        ({"identifiers": {"email": "nobody@"}}, "identifiers.email"),
        ({"identifiers": {"phone": "555"}}, "identifiers.phone"),
        ({"total_amount": "-5.00"}, "wrong sign"),
        ({"total_amount": "1.234"}, "2 decimal places"),
        ({"store_id": "no-such-store"}, "unknown store"),
        ({"items": [{"sku": "A", "quantity": "-1", "unit_price": "1"}]}, "quantity"),
        ({"occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
    ],
)
def test_bad_transactions_are_422_and_write_nothing(
    client: TestClient,
    marketer: dict[str, str],
    store_id: str,
    database_url: str,
    change: dict[str, Any],
    field_or_text: str,
) -> None:
    with psycopg.connect(database_url) as c:
        before = c.execute(
            "SELECT (SELECT count(*) FROM crm_transactions), (SELECT count(*) FROM crm_records)"
        ).fetchone()
    body = {**_txn(store_id, {"email": f"{uuid.uuid4().hex}@ok.org"}), **change}
    res = client.post("/v1/transactions", json=body, headers=marketer)
    assert res.status_code == 422, res.text
    assert res.headers["content-type"] == "application/problem+json"
    assert field_or_text in res.text
    with psycopg.connect(database_url) as c:
        after = c.execute(
            "SELECT (SELECT count(*) FROM crm_transactions), (SELECT count(*) FROM crm_records)"
        ).fetchone()
    assert after == before


def test_email_consent_needs_double_opt_in_and_is_audited(
    client: TestClient, marketer: dict[str, str], uid: str, database_url: str
) -> None:
    pid = client.post(
        "/v1/customers", json={"identifiers": {"email": f"{uid}@mail.org"}}, headers=marketer
    ).json()["profile_id"]
    url = f"/v1/customers/{pid}/consents/email/marketing"
    grant = client.put(
        url, json={"granted": True, "source": "web-form", "proof": "ip 1.2.3.4"}, headers=marketer
    ).json()
    assert grant["status"] == "pending" and "confirmation_token" not in grant
    sms = client.put(
        f"/v1/customers/{pid}/consents/sms/marketing",
        json={"granted": True, "source": "till"},
        headers=marketer,
    ).json()
    assert sms["status"] == "granted"
    with psycopg.connect(database_url) as c:  # the token went to the subject's address only
        [(token,)] = c.execute(
            "SELECT secret FROM crm_message_outbox WHERE profile_id = %s", (pid,)
        ).fetchall()
    ok = client.post("/v1/consents/confirm", json={"token": token})
    assert ok.json()["status"] == "granted"
    reuse = client.post("/v1/consents/confirm", json={"token": token})
    assert reuse.status_code == 404
    client.put(url, json={"granted": False, "source": "unsubscribe-link"}, headers=marketer)
    state = {
        (c["channel"], c["status"])
        for c in client.get(f"/v1/customers/{pid}/consents", headers=marketer).json()
    }
    assert state == {("email", "denied"), ("sms", "granted")}
    trail = client.get(f"/v1/customers/{pid}/consents/events", headers=marketer).json()
    assert [e["status"] for e in trail] == ["denied", "granted", "granted", "pending"]
    bad = client.put(
        f"/v1/customers/{pid}/consents/pigeon/marketing",
        json={"granted": True, "source": "x"},
        headers=marketer,
    )
    assert bad.status_code == 422


def test_consent_audit_trail_is_append_only(database_url: str) -> None:
    with psycopg.connect(database_url) as c, pytest.raises(psycopg.errors.RestrictViolation):
        c.execute("DELETE FROM crm_consent_events")


def test_touchpoints_attach_and_deduplicate(
    client: TestClient, marketer: dict[str, str], store_id: str, uid: str
) -> None:
    body = {
        "channel": "web",
        "event": "product_view",
        "identifiers": {"device_id": f"d-{uid}"},
        "occurred_at": datetime.now(UTC).isoformat(),
        "external_id": f"ev-{uid}",
    }
    first = client.post("/v1/touchpoints", json=body, headers=marketer)
    assert first.status_code == 201 and first.json()["lifecycle_stage"] == "awareness"
    assert client.post("/v1/touchpoints", json=body, headers=marketer).status_code == 200
    visit = {
        **body,
        "channel": "store_visit",
        "event": "visit",
        "store_id": store_id,
        "external_id": None,
    }
    second = client.post("/v1/touchpoints", json=visit, headers=marketer).json()
    assert second["profile_id"] == first.json()["profile_id"]
    assert second["lifecycle_stage"] == "consideration"


def test_roles_and_store_scoping(client: TestClient, token_for: Any, store_id: str) -> None:
    manager = token_for(Role.STORE_MANAGER, {store_id})
    assert client.get("/v1/customers", headers=manager).status_code == 403
    period = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}
    assert (
        client.get(
            "/v1/lifecycle/funnel", headers=manager, params={**period, "store_id": store_id}
        ).status_code
        == 200
    )
    assert client.get("/v1/lifecycle/funnel", headers=manager, params=period).status_code == 403
    assert (
        client.get(
            "/v1/lifecycle/funnel", headers=manager, params={**period, "store_id": "other"}
        ).status_code
        == 403
    )
    assert client.get("/v1/customers", headers=token_for(Role.DEVICE)).status_code == 403


def test_openapi_documents_the_crm(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/customers/{profile_id}",
        "/v1/transactions",
        "/v1/touchpoints",
        "/v1/customers/import",
        "/v1/lifecycle/funnel",
        "/v1/rewards",
    ):
        assert path in paths
    burn = paths["/v1/loyalty/accounts/{account_id}/burn"]["post"]
    header = [p for p in burn["parameters"] if p["in"] == "header"]
    assert header[0]["name"] == "Idempotency-Key" and header[0]["required"] is True
