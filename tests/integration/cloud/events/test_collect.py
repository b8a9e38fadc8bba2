"""Collection API: Segment calls and batches with write keys, messageId idempotency, clock-skew
correction, promoted keys, and bad input answered with a problem body (never a 500)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.crm.events import repository as repo
from cloud.crm.events.repository import Source
from tests.integration.cloud.events.conftest import basic

MakeSource = Callable[..., tuple[Source, str]]


def _stored(pg_pool: Any, source_id: str) -> list[repo.Event]:
    with pg_pool.connection() as conn:
        return repo.events_of(conn, source_id=source_id)


def _track(event: str = "Product Viewed", **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "anonymousId": "anon-1",
            "messageId": uuid.uuid4().hex, **extra}  # fmt: skip


def test_batch_is_stored_once_per_message_id(
    client: TestClient, make_source: MakeSource, pg_pool: Any
) -> None:
    source, key = make_source()
    calls = [_track(properties={"sku": "A", "store_id": "s1", "revenue": 12.5}), _track()]
    first = client.post("/v1/events/batch", json={"batch": calls}, auth=basic(key))
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 2
    again = client.post("/v1/events/batch", json={"batch": calls}, auth=basic(key))
    assert again.json() == {"accepted": 0, "duplicates": 2, "flagged": 0, "skipped_no_consent": []}
    rows = _stored(pg_pool, source.id)
    assert len(rows) == 2
    promoted = next(r for r in rows if r.properties.get("sku") == "A")
    assert promoted.store_id == "s1" and promoted.revenue == Decimal("12.5")
    assert promoted.type == "track" and promoted.event == "Product Viewed"


def test_clock_skew_is_corrected_from_sent_at(
    client: TestClient, make_source: MakeSource, pg_pool: Any, token_for: Any
) -> None:
    source, key = make_source()
    off = timedelta(days=3650)  # the sender's clock is ten years behind
    now = datetime.now(UTC)
    call = _track(timestamp=(now - off - timedelta(minutes=5)).isoformat())
    body = {"batch": [call], "sentAt": (now - off).isoformat()}
    assert client.post("/v1/events/batch", json=body, auth=basic(key)).status_code == 200
    (row,) = _stored(pg_pool, source.id)
    assert abs(row.occurred_at - (row.received_at - timedelta(minutes=5))) < timedelta(seconds=5)
    got = client.get(
        f"/v1/events/sources/{source.id}/violations", headers=token_for(Role.HQ_MARKETER)
    ).json()
    assert [(v["kind"], v["action"], v["count"]) for v in got] == [("clock_skew", "corrected", 1)]


def test_a_time_ten_years_off_without_sent_at_is_a_422_and_counted(
    client: TestClient, make_source: MakeSource, pg_pool: Any, token_for: Any
) -> None:
    source, key = make_source()
    call = _track(timestamp=(datetime.now(UTC) + timedelta(days=3650)).isoformat())
    res = client.post("/v1/events/batch", json={"batch": [_track(), call]}, auth=basic(key))
    assert res.status_code == 422
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["errors"][0]["field"] == "batch[1].timestamp"
    assert _stored(pg_pool, source.id) == []  # nothing of the batch
    got = client.get(
        f"/v1/events/sources/{source.id}/violations", headers=token_for(Role.HQ_MARKETER)
    ).json()
    assert [(v["kind"], v["action"]) for v in got] == [("timestamp_out_of_range", "rejected")]


def test_single_call_endpoints(client: TestClient, make_source: MakeSource, pg_pool: Any) -> None:
    source, key = make_source()
    for path, body in [
        ("track", {"event": "Signed Up", "userId": "u1"}),
        ("page", {"name": "Home", "anonymousId": "a1", "properties": {"path": "/"}}),
        ("screen", {"name": "Cart", "anonymousId": "a1"}),
        ("identify", {"anonymousId": "a1", "traits": {"plan": "gold"}}),
        ("alias", {"previousId": "a1", "userId": "u1"}),
    ]:
        res = client.post(f"/v1/events/{path}", json=body, auth=basic(key))
        assert res.status_code == 200, (path, res.text)
    assert sorted(r.type for r in _stored(pg_pool, source.id)) == sorted(
        ["track", "page", "screen", "identify", "alias"]
    )


def test_write_keys_are_source_scoped(client: TestClient, token_for: Any) -> None:
    body = {"batch": [_track()]}
    assert client.post("/v1/events/batch", json=body).status_code == 401
    assert client.post("/v1/events/batch", json=body, auth=basic("mpwk_nope")).status_code == 401
    marketer = token_for(Role.ADMIN)
    assert client.post("/v1/events/batch", json=body, headers=marketer).status_code == 401


_BAD = {"batch": [{"type": "track"}]}  # no event, nobody: a 422 once authenticated


@pytest.mark.parametrize(
    ("path", "auth", "body", "status"),
    [
        ("batch", None, _BAD, 401),
        ("batch", None, b"{not json", 401),
        ("batch", "mpwk_unknown", _BAD, 401),
        ("batch", "mpwk_unknown", b"{not json", 401),
        ("batch", "live", _BAD, 422),
        ("batch", "live", b"{not json", 422),
        ("batch", "in-body", _BAD, 422),
        ("track", None, {"properties": "nope"}, 401),
        ("track", "mpwk_unknown", {"properties": "nope"}, 401),
        ("track", "live", {"properties": "nope"}, 422),
        ("identify", None, {"type": "track", "userId": "u"}, 401),
        ("identify", "live", {"type": "track", "userId": "u"}, 422),
        ("collect", None, b"[]", 401),
        ("collect", "in-body", {"batch": []}, 422),
    ],
)
def test_credentials_are_judged_before_the_body(
    client: TestClient, make_source: MakeSource, path: str, auth: str | None, body: Any,
    status: int,
) -> None:  # fmt: skip
    """Without a live write key the answer is a 401 challenging for Basic, whatever the body;
    with one, a bad body is a 422."""
    _, key = make_source()
    if isinstance(body, dict) and auth == "in-body":
        body = {**body, "writeKey": key}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    creds = basic(key if auth == "live" else auth) if auth not in (None, "in-body") else None
    res = client.post(
        f"/v1/events/{path}", content=raw, auth=creds,
        headers={"Content-Type": "text/plain" if path == "collect" else "application/json"},
    )  # fmt: skip
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == "application/problem+json"
    if status == 401:
        assert res.headers["www-authenticate"].startswith("Basic ")


def test_bad_input_is_a_problem_never_a_500(client: TestClient, make_source: MakeSource) -> None:
    _, key = make_source()
    huge = {"blob": "x" * 40_000}
    cases = [
        {"batch": []},  # empty
        {"batch": "nope"},  # not a list
        {"batch": [{"type": "track", "anonymousId": "a"}]},  # track without event
        {"batch": [{"type": "track", "event": "E"}]},  # nobody
        {"batch": [_track(properties=huge)]},  # oversized property
        {"batch": [_track(timestamp="yesterday")]},
        {"batch": [_track(timestamp="2026-01-01T00:00:00")]},  # no offset
        {"batch": [{"type": "nope", "anonymousId": "a"}]},
        {"batch": [_track(properties={"price": float("nan")})]},  # jsonb cannot hold NaN
        {"batch": [_track(properties={"cart": {"total": float("inf")}})]},
    ]
    for body in cases:
        raw = json.dumps(body).encode()  # NaN and Infinity as Python writes them
        res = client.post(
            "/v1/events/batch", content=raw, auth=basic(key),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert res.status_code == 422, (body, res.text)
        assert res.headers["content-type"] == "application/problem+json"
    raw = client.post(
        "/v1/events/batch", content=b"{not json", auth=basic(key),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert raw.status_code == 422 and raw.headers["content-type"] == "application/problem+json"


def test_collect_takes_text_plain_with_the_key_in_the_body(
    client: TestClient, make_source: MakeSource, pg_pool: Any
) -> None:
    source, key = make_source()
    body = json.dumps({"writeKey": key, "batch": [_track()]})
    res = client.post("/v1/events/collect", content=body, headers={"Content-Type": "text/plain"})
    assert res.status_code == 200, res.text
    assert res.headers["access-control-allow-origin"] == "*"
    empty = json.dumps({"writeKey": key, "batch": []})
    bad = client.post("/v1/events/collect", content=empty, headers={"Content-Type": "text/plain"})
    assert bad.status_code == 422 and bad.headers["access-control-allow-origin"] == "*"
    nokey = json.dumps({"batch": [_track()]})
    assert client.post("/v1/events/collect", content=nokey).status_code == 401
    assert len(_stored(pg_pool, source.id)) == 1


def test_the_sdk_is_served(client: TestClient) -> None:
    res = client.get("/v1/sdk/mallpulse.js")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/javascript")
    assert b"sendBeacon" in res.content
