"""The Web Push API: the VAPID key and scripts, customer push tokens, storing, replacing and
deleting a subscription; and a message sent to a stored subscription arriving decrypted at the
local push service (pywebpush's encryption, VAPID checked)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.crm.messaging import webpush_store
from cloud.crm.messaging.channels.base import (
    InvalidAddressError,
    OutboundMessage,
    PermanentChannelError,
    build_channel,
    parse_config,
)
from cloud.crm.messaging.channels.jwt import unb64url
from cloud.crm.messaging.channels.webpush import WebPushChannel
from tests.support.providers import PushService

from .conftest import SUBSCRIPTION_SECRET

BASE = "/v1/messaging/push"


def _token(client: TestClient, token_for: Any, profile_id: int) -> str:
    resp = client.post(
        f"{BASE}/tokens", json={"profile_id": profile_id}, headers=token_for(Role.HQ_MARKETER)
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def test_public_key_and_scripts(push_client: TestClient, webpush_raw: dict[str, Any]) -> None:
    channel = build_channel(parse_config(webpush_raw))
    assert isinstance(channel, WebPushChannel)
    resp = push_client.get(f"{BASE}/vapid-public-key")
    assert resp.status_code == 200 and resp.json() == {"public_key": channel.public_key}
    assert resp.headers["access-control-allow-origin"] == "*"
    assert len(unb64url(channel.public_key)) == 65
    for script, marker in [("sw.js", "showNotification"), ("push.js", "pushManager.subscribe")]:
        got = push_client.get(f"{BASE}/{script}")
        assert got.status_code == 200 and marker in got.text
        assert got.headers["content-type"].startswith("text/javascript")
    assert push_client.get(f"{BASE}/no-such-thing").status_code == 404
    pre = push_client.options(f"{BASE}/subscriptions")
    assert pre.status_code == 204 and "X-Push-Token" in pre.headers["access-control-allow-headers"]


def test_not_configured_is_a_404(client: TestClient) -> None:
    resp = client.get(f"{BASE}/vapid-public-key")
    assert resp.status_code == 404
    assert "no channel of type 'webpush'" in resp.json()["detail"]


def test_store_replace_list_delete(
    push_client: TestClient,
    push_service: PushService,
    token_for: Any,
    new_profile: Callable[..., int],
) -> None:
    ann, bob = new_profile(), new_profile()
    sub = push_service.subscribe()
    made = push_client.post(
        f"{BASE}/subscriptions",
        json=sub,
        headers={"X-Push-Token": _token(push_client, token_for, ann)},
    )
    assert made.status_code == 201, made.text
    assert made.json()["profile_id"] == ann and made.json()["endpoint"] == sub["endpoint"]
    # Bob logs in on the same browser: the endpoint moves to him, keys replaced
    again = push_client.post(
        f"{BASE}/subscriptions",
        json=sub,
        headers={"X-Push-Token": _token(push_client, token_for, bob)},
    )
    assert again.status_code == 201 and again.json()["id"] == made.json()["id"]
    marketer = token_for(Role.HQ_MARKETER)
    listed = push_client.get(f"{BASE}/subscriptions", params={"profile_id": bob}, headers=marketer)
    assert [s["endpoint"] for s in listed.json()] == [sub["endpoint"]]
    assert (
        push_client.get(
            f"{BASE}/subscriptions", params={"profile_id": ann}, headers=marketer
        ).json()
        == []
    )
    # Ann cannot delete Bob's subscription; Bob can, once
    ann_token = {"X-Push-Token": _token(push_client, token_for, ann)}
    bob_token = {"X-Push-Token": _token(push_client, token_for, bob)}
    gone = push_client.delete(
        f"{BASE}/subscriptions", params={"endpoint": sub["endpoint"]}, headers=ann_token
    )
    assert gone.status_code == 404
    for status in (204, 404):
        resp = push_client.delete(
            f"{BASE}/subscriptions", params={"endpoint": sub["endpoint"]}, headers=bob_token
        )
        assert resp.status_code == status


@pytest.mark.parametrize(
    ("mutate", "status", "where"),
    [
        (lambda s: s | {"endpoint": "ftp://push.example/x"}, 422, "endpoint"),
        (lambda s: s | {"keys": {"p256dh": "short", "auth": s["keys"]["auth"]}}, 422, "p256dh"),
        (lambda s: s | {"keys": {"p256dh": s["keys"]["p256dh"]}}, 422, "auth"),
        (lambda s: {"keys": s["keys"]}, 422, "endpoint"),
    ],
)
def test_bad_subscriptions_are_named(
    push_client: TestClient,
    push_service: PushService,
    token_for: Any,
    new_profile: Callable[..., int],
    mutate: Any,
    status: int,
    where: str,
) -> None:
    headers = {"X-Push-Token": _token(push_client, token_for, new_profile())}
    resp = push_client.post(
        f"{BASE}/subscriptions", json=mutate(push_service.subscribe()), headers=headers
    )
    assert resp.status_code == status, resp.text
    assert where in resp.text


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token-at-all",
        webpush_store.sign_token("another-secret", profile_id=1)[0],
        webpush_store.sign_token(SUBSCRIPTION_SECRET, profile_id=1, now=0)[0],
    ],
    ids=["malformed", "forged", "expired"],
)
def test_bad_push_tokens_are_401(
    push_client: TestClient, push_service: PushService, token: str
) -> None:
    resp = push_client.post(
        f"{BASE}/subscriptions", json=push_service.subscribe(), headers={"X-Push-Token": token}
    )
    assert resp.status_code == 401 and "X-Push-Token" in resp.json()["detail"]


def test_tokens_need_a_marketer_and_a_customer(push_client: TestClient, token_for: Any) -> None:
    assert push_client.post(f"{BASE}/tokens", json={"profile_id": 1}).status_code == 401
    resp = push_client.post(
        f"{BASE}/tokens", json={"profile_id": 9_000_000_000}, headers=token_for(Role.HQ_MARKETER)
    )
    assert resp.status_code == 404


def test_a_stored_subscription_receives_the_message(
    push_client: TestClient,
    push_service: PushService,
    token_for: Any,
    pg_pool: Any,
    new_profile: Callable[..., int],
    webpush_raw: dict[str, Any],
) -> None:
    profile = new_profile()
    sub = push_service.subscribe(
        application_server_key=push_client.get(f"{BASE}/vapid-public-key").json()["public_key"]
    )
    push_client.post(
        f"{BASE}/subscriptions",
        json=sub,
        headers={"X-Push-Token": _token(push_client, token_for, profile)},
    )
    with pg_pool.connection() as conn:
        (row,) = webpush_store.for_profile(conn, profile)
    channel = build_channel(parse_config(webpush_raw))
    message = OutboundMessage(
        message_id=99,
        address=row.address(),
        subject="Flash sale",
        body="满 200 减 30 · today only",
        profile_id=profile,
    )
    location = channel.send(message)
    (received,) = [r for r in push_service.accepted if r.provider_id == location]
    assert received.parsed == (
        b'{"title": "Flash sale", "body": "\xe6\xbb\xa1 200 \xe5\x87\x8f 30 \xc2\xb7 today only",'
        b' "id": 99}'
    )
    assert received.headers["ttl"] == "86400" and received.headers["urgency"] == "normal"
    # a subscription made for another VAPID key is refused by the push service: permanent
    other = push_service.subscribe(application_server_key="B" + "A" * 86)
    with pytest.raises(PermanentChannelError, match=r"403.*resubscribe"):
        channel.send(OutboundMessage(message_id=100, address=json.dumps(other), body="x"))
    # the browser unsubscribed: gone
    push_service.gone.add(row.endpoint.rsplit("/", 1)[1])
    with pytest.raises(InvalidAddressError, match=r"410.*gone"):
        channel.send(message)
