"""The messaging API over the real app: templates CRUD and preview (422s that name the problem),
send with a required Idempotency-Key (once per key, 409 on reuse), message status with its
decisions, the in-app inbox, one-click unsubscribe, and an OpenAPI document that says so."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.crm.messaging import unsubscribe
from cloud.crm.messaging.channels.base import OutboundMessage
from cloud.crm.messaging.channels.inapp import InAppChannel
from tests.integration.cloud.security.crm_helpers import customer, headers, problem

T = "/v1/messaging/templates"
SECRET = "one-click-secret-for-the-api-test-7d1e"


@pytest.fixture(scope="module")
def marketer(token_for: Any) -> dict[str, str]:
    """A headquarters marketer."""
    return headers(token_for, Role.HQ_MARKETER)


def _name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def test_template_crud_and_a_syntax_error_is_a_422_naming_the_line(
    client: TestClient, marketer: dict[str, str]
) -> None:
    name = _name()
    body = {"format": "text", "subject": "Hi {{ profile.first_name }}", "body": "Hello"}
    res = client.put(f"{T}/{name}/email/en", json=body, headers=marketer)
    assert res.status_code == 200, res.text
    assert res.json()["locale"] == "en" and res.json()["subject"] == body["subject"]
    bad = client.put(
        f"{T}/{name}/email/zh-CN",
        json={"format": "text", "body": "line one\n{% if x %}never closed"},
        headers=marketer,
    )
    err = problem(bad, 422)
    assert err["type"].endswith("/template-error") and "body line 2" in err["detail"]
    assert [v["locale"] for v in client.get(f"{T}/{name}/email", headers=marketer).json()] == ["en"]
    assert name in {
        t["name"] for t in client.get(T, headers=marketer, params={"limit": 500}).json()
    }
    assert client.delete(f"{T}/{name}/email/en", headers=marketer).status_code == 204
    problem(client.delete(f"{T}/{name}/email/en", headers=marketer), 404)
    problem(client.get(f"{T}/{name}/email", headers=marketer), 404)


def test_preview_with_locale_fallback_sample_profile_and_sms_segments(
    client: TestClient, marketer: dict[str, str]
) -> None:
    name = _name()
    for locale, text in (
        ("en", "Hi {{ profile.first_name }}"),
        ("zh-CN", "您好 {{ profile.first_name }}"),
    ):
        res = client.put(
            f"{T}/{name}/sms/{locale}", json={"format": "text", "body": text}, headers=marketer
        )
        assert res.status_code == 200, res.text
    out = client.post(
        f"{T}/preview", json={"channel": "sms", "name": name, "locale": "zh-TW"}, headers=marketer
    )
    assert out.status_code == 200, out.text
    assert out.json()["locale"] == "zh-CN" and out.json()["text"] == "您好 Ann"
    assert (out.json()["sms_segments"], out.json()["sms_encoding"]) == (1, "UCS-2")
    fr = client.post(
        f"{T}/preview", json={"channel": "sms", "name": name, "locale": "fr"}, headers=marketer
    )
    assert fr.json()["text"] == "Hi Ann" and fr.json()["sms_encoding"] == "GSM-7"
    undefined = client.post(
        f"{T}/preview",
        json={"channel": "email", "content": {"format": "text", "body": "{{ coupon.code }}"}},
        headers=marketer,
    )
    assert "undefined variable: 'coupon' is undefined" in problem(undefined, 422)["detail"]
    given = client.post(
        f"{T}/preview",
        json={
            "channel": "email",
            "content": {
                "format": "mjml",
                "body": "<mjml><mj-body><mj-text>{{ coupon.code }}</mj-text></mj-body></mjml>",
            },
            "variables": {"coupon": {"code": "SPRING20"}},
        },
        headers=marketer,
    )
    assert given.status_code == 200, given.text
    assert "SPRING20" in given.json()["html"] and given.json()["text"] == "SPRING20"
    problem(client.post(f"{T}/preview", json={"channel": "sms"}, headers=marketer), 422)
    problem(
        client.post(f"{T}/preview", json={"channel": "sms", "name": _name()}, headers=marketer), 404
    )


def test_send_needs_an_idempotency_key_and_sends_once_per_key(
    client: TestClient, marketer: dict[str, str]
) -> None:
    pid, _ = customer(client, marketer)
    body = {"profile_id": pid, "channel": "email", "template": "welcome", "purpose": "marketing"}
    problem(client.post("/v1/messaging/messages", json=body, headers=marketer), 422)
    key = {**marketer, "Idempotency-Key": uuid.uuid4().hex}
    first = client.post("/v1/messaging/messages", json=body, headers=key)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "queued" and first.json()["replayed"] is False
    again = client.post("/v1/messaging/messages", json=body, headers=key)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again.json()["replayed"] is True
    other = client.post("/v1/messaging/messages", json={**body, "priority": "high"}, headers=key)
    assert "already used" in problem(other, 409)["detail"]
    status = client.get(f"/v1/messaging/messages/{first.json()['id']}", headers=marketer)
    assert status.status_code == 200 and status.json()["decisions"] == []
    problem(client.get("/v1/messaging/messages/999999999", headers=marketer), 404)
    fresh = {**marketer, "Idempotency-Key": uuid.uuid4().hex}
    no_phone = client.post("/v1/messaging/messages", json={**body, "channel": "sms"}, headers=fresh)
    assert "has no phone" in problem(no_phone, 422)["detail"]
    nobody = client.post(
        "/v1/messaging/messages", json={**body, "profile_id": 2**62}, headers=fresh
    )
    problem(nobody, 404)


def test_the_inbox_lists_in_app_messages_newest_first(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    pid, _ = customer(client, marketer)
    ids = []
    for _ in range(2):
        res = client.post(
            "/v1/messaging/messages",
            json={
                "profile_id": pid,
                "channel": "inapp",
                "template": "n",
                "purpose": "transactional",
            },
            headers={**marketer, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert res.status_code == 202, res.text
        ids.append(res.json()["id"])
    channel = InAppChannel(database_url)
    for i, mid in enumerate(ids):
        channel.send(
            OutboundMessage(
                message_id=mid, address="", subject=f"t{i}", body=f"b{i}", profile_id=pid
            )
        )
    channel.close()
    inbox = client.get(f"/v1/customers/{pid}/inbox", headers=marketer)
    assert inbox.status_code == 200, inbox.text
    assert [m["title"] for m in inbox.json()] == ["t1", "t0"]
    page = client.get(
        f"/v1/customers/{pid}/inbox", params={"before": inbox.json()[0]["id"]}, headers=marketer
    )
    assert [m["title"] for m in page.json()] == ["t0"]
    problem(client.get("/v1/customers/999999999/inbox", headers=marketer), 404)


@pytest.fixture(scope="module")
def unsubscribe_client(
    settings: Settings, pg_pool: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app with an e-mail channel that signs unsubscribe links."""
    from cloud.api.app import create_app

    path: Path = tmp_path_factory.mktemp("messaging") / "messaging.json"
    email = {
        "type": "smtp", "host": "127.0.0.1", "from_address": "news@mallpulse.test",
        "unsubscribe_url": "https://mallpulse.test/v1/messaging/unsubscribe",
        "unsubscribe_secret": SECRET,
    }  # fmt: skip
    path.write_text(json.dumps({"channels": {"email": email}}))
    app = create_app(settings.model_copy(update={"messaging_config_file": str(path)}), pool=pg_pool)
    with TestClient(app) as c:
        yield c


def test_one_click_unsubscribe_suppresses_marketing_and_refuses_forged_tokens(
    unsubscribe_client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    pid, _ = customer(unsubscribe_client, marketer)
    token = unsubscribe.sign(SECRET, profile_id=pid, channel="email")
    url = f"/v1/messaging/unsubscribe/{token}"
    res = unsubscribe_client.post(url, content=b"List-Unsubscribe=One-Click")
    assert res.status_code == 200, res.text
    assert res.json() == {"channel": "email", "unsubscribed": True}
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT reason FROM crm_msg_suppressions WHERE profile_id = %s AND channel = 'email'",
            (pid,),
        ).fetchone()
    assert row == ("unsubscribe",)
    forged = unsubscribe.sign("another-secret-entirely-0000000", profile_id=pid, channel="email")
    problem(unsubscribe_client.post(f"/v1/messaging/unsubscribe/{forged}"), 404)
    problem(unsubscribe_client.post("/v1/messaging/unsubscribe/garbage"), 404)
    assert unsubscribe_client.get(url).status_code == 405  # a GET (link scanner) never unsubscribes


def test_the_openapi_document_declares_the_messaging_errors(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    send = doc["paths"]["/v1/messaging/messages"]["post"]
    assert {"202", "404", "409", "422"} <= set(send["responses"])
    key = [p for p in send["parameters"] if p["name"] == "Idempotency-Key"]
    assert key and key[0]["required"] is True
    preview = doc["paths"]["/v1/messaging/templates/preview"]["post"]["responses"]
    assert preview["422"]["content"].keys() == {"application/problem+json"}
