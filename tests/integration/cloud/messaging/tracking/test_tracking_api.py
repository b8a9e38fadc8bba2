"""Tracking over the real app and database: signed delivery webhooks (a forged, unsigned or
replayed-late one is refused, counted and changes nothing), the open pixel, click redirects that
never redirect anywhere unsigned, tracked unsubscribes, and what they leave behind: events per
message, campaign statistics and `message.*` events in the behavioural event stream."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from cloud.crm.messaging import tracking
from tests.integration.cloud.messaging.tracking.conftest import (
    BASE,
    HOOK_SECRET,
    LINK_SECRET,
    dsn,
)
from tests.integration.cloud.security.crm_helpers import problem

HOOK = "/v1/messaging/webhooks/email"


def _signed(body: bytes, *, secret: str = HOOK_SECRET, at: float | None = None) -> dict[str, str]:
    ts = f"{time.time() if at is None else at:.0f}"
    sig = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-MallPulse-Timestamp": ts, "X-MallPulse-Signature": sig}


def _rejected(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "mallpulse_messaging_webhooks_rejected_total", {"channel": "email", "reason": reason}
    )
    return value or 0.0


def _events(database_url: str, mid: int) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT kind, detail FROM crm_msg_events WHERE message_id = %s ORDER BY id", (mid,)
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_a_signed_receipt_is_recorded_once_and_a_bad_signature_never_processed(
    tracking_client: TestClient, sent_message: dict[str, Any], database_url: str
) -> None:
    mid, body = sent_message["id"], dsn(sent_message["provider_id"])
    before = {r: _rejected(r) for r in ("missing", "stale", "mismatch")}
    problem(tracking_client.post(HOOK, content=body), 401)
    problem(
        tracking_client.post(HOOK, content=body, headers=_signed(body, at=time.time() - 900)), 401
    )
    problem(tracking_client.post(HOOK, content=body, headers=_signed(body, secret="forged")), 403)
    tampered = _signed(body)
    problem(tracking_client.post(HOOK, content=body + b" ", headers=tampered), 403)
    assert _events(database_url, mid) == []
    assert {r: _rejected(r) - before[r] for r in before} == {
        "missing": 1,
        "stale": 1,
        "mismatch": 2,
    }

    for _ in range(2):  # the provider retries: stored once
        res = tracking_client.post(HOOK, content=body, headers=_signed(body))
        assert res.status_code == 200, res.text
        assert res.json() == {"matched": True, "message_id": mid, "status": "delivered"}
    assert _events(database_url, mid) == [("delivered", "delivered 2.0.0")]

    other = dsn("<mp-999999999@elsewhere.test>")
    res = tracking_client.post(HOOK, content=other, headers=_signed(other))
    assert res.json()["matched"] is False
    garbage = b"hello"
    problem(tracking_client.post(HOOK, content=garbage, headers=_signed(garbage)), 422)
    problem(
        tracking_client.post("/v1/messaging/webhooks/sms", content=body, headers=_signed(body)), 404
    )


def test_a_hard_bounce_suppresses_and_is_a_bounced_event(
    tracking_client: TestClient, sent_message: dict[str, Any], database_url: str
) -> None:
    body = dsn(sent_message["provider_id"], action="failed", status="5.1.1")
    res = tracking_client.post(HOOK, content=body, headers=_signed(body))
    assert res.status_code == 200 and res.json()["status"] == "hard_bounce", res.text
    assert _events(database_url, sent_message["id"]) == [("bounced", "hard_bounce 5.1.1")]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT reason FROM crm_msg_suppressions WHERE profile_id = %s AND channel = 'email'",
            (sent_message["profile_id"],),
        ).fetchone()
    assert row == ("hard_bounce",)


def test_opens_clicks_and_unsubscribes_land_in_stats_and_the_event_stream(
    tracking_client: TestClient,
    sent_message: dict[str, Any],
    marketer: dict[str, str],
    database_url: str,
) -> None:
    mid, campaign = sent_message["id"], sent_message["campaign"]
    html = tracking.track_links(
        '<html><body><a href="https://shop.test/sale?x=1">Sale</a></body></html>',
        mid, LINK_SECRET, BASE,
    )  # fmt: skip
    pixel = html.split('<img src="')[1].split('"')[0].removeprefix(BASE)
    link = html.split('href="')[1].split('"')[0].removeprefix(BASE)
    for _ in range(2):
        res = tracking_client.get(pixel)
        assert res.status_code == 200 and res.headers["content-type"] == "image/gif"
        assert res.content == tracking.PIXEL_GIF
    res = tracking_client.get(link, follow_redirects=False)
    assert res.status_code == 302 and res.headers["location"] == "https://shop.test/sale?x=1"

    # a tampered link: 400, no redirect anywhere, nothing recorded
    forged = tracking.sign("not-the-secret", "c", mid, "https://evil.test/")
    bad = tracking_client.get(f"/v1/messaging/t/c/{forged}", follow_redirects=False)
    problem(bad, 400)
    assert "location" not in bad.headers
    cut = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    problem(tracking_client.get(cut, follow_redirects=False), 400)
    problem(tracking_client.get("/v1/messaging/t/o/not-a-token-at-all.gif"), 400)

    unsub = tracking.unsubscribe_url(mid, LINK_SECRET, BASE).removeprefix(BASE)
    page = tracking_client.get(unsub)
    assert page.status_code == 200 and "<form" in page.text
    assert tracking_client.post(unsub).json() == {"channel": "email", "unsubscribed": True}
    assert tracking_client.post(unsub).status_code == 200  # twice: still one event

    events = tracking_client.get(f"/v1/messaging/messages/{mid}/events", headers=marketer)
    assert events.status_code == 200, events.text
    assert events.json()["counts"] == {
        "delivered": 0, "opened": 2, "clicked": 1, "bounced": 0, "unsubscribed": 1,
        "complained": 0,
    }  # fmt: skip
    clicked = [e for e in events.json()["events"] if e["kind"] == "clicked"]
    assert clicked[0]["url"] == "https://shop.test/sale?x=1"

    stats = tracking_client.get(f"/v1/messaging/campaigns/{campaign}/stats", headers=marketer)
    assert stats.status_code == 200, stats.text
    s = stats.json()
    assert (s["messages"], s["sent"]) == (1, 1)
    assert s["opened"] == {"unique": 1, "total": 2, "rate": 1.0}
    assert s["clicked"] == {"unique": 1, "total": 1, "rate": 1.0}
    assert s["bounced"] == {"unique": 0, "total": 0, "rate": 0.0}
    problem(tracking_client.get("/v1/messaging/campaigns/nope-none/stats", headers=marketer), 404)
    problem(tracking_client.get("/v1/messaging/messages/999999999/events", headers=marketer), 404)
    problem(tracking_client.get(f"/v1/messaging/campaigns/{campaign}/stats"), 401)

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT event, profile_id, properties FROM crm_events WHERE source_id = 'messaging'"
            " AND properties->>'message_id' = %s ORDER BY id",
            (str(mid),),
        ).fetchall()
        suppression = conn.execute(
            "SELECT reason FROM crm_msg_suppressions WHERE profile_id = %s AND channel = 'email'",
            (sent_message["profile_id"],),
        ).fetchone()
    assert [r[0] for r in rows] == [
        "message.opened", "message.opened", "message.clicked", "message.unsubscribed",
    ]  # fmt: skip
    assert {r[1] for r in rows} == {sent_message["profile_id"]}
    assert rows[0][2] == {"message_id": mid, "campaign": campaign, "channel": "email"}
    assert suppression == ("unsubscribe",)
