"""Tracking plans (flag stores and counts, reject answers 422 and counts), consent-required
sources, and identity: an identify ties past and future events of its anonymous id to the
profile the CRM's identity resolution finds."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.crm.events import repository as repo
from cloud.crm.events.repository import Source
from tests.integration.cloud.events.conftest import basic

MakeSource = Callable[..., tuple[Source, str]]
SCHEMA = {
    "type": "object",
    "properties": {"price": {"type": "number"}},
    "required": ["price"],
}


def _call(event: str, anon: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "anonymousId": anon,
            "messageId": uuid.uuid4().hex, **extra}  # fmt: skip


def _plan(client: TestClient, source_id: str, headers: dict[str, str]) -> None:
    url = f"/v1/events/sources/{source_id}/plan/track/Order Completed"
    assert client.put(url, json=SCHEMA, headers=headers).status_code == 204


def _violations(client: TestClient, source_id: str, headers: dict[str, str]) -> list[Any]:
    got = client.get(f"/v1/events/sources/{source_id}/violations", headers=headers)
    assert got.status_code == 200
    return [(v["event"], v["kind"], v["action"], v["count"]) for v in got.json()]


def test_flag_mode_stores_and_counts(
    client: TestClient, make_source: MakeSource, token_for: Any, pg_pool: Any
) -> None:
    source, key = make_source(plan_mode="flag")
    hq = token_for(Role.HQ_MARKETER)
    _plan(client, source.id, hq)
    batch = [
        _call("Order Completed", "a", properties={"price": 3}),
        _call("Order Completed", "a", properties={"price": "3"}),
        _call("Unplanned", "a"),
    ]
    res = client.post("/v1/events/batch", json={"batch": batch}, auth=basic(key))
    assert res.status_code == 200 and res.json()["accepted"] == 3 and res.json()["flagged"] == 2
    assert sorted(_violations(client, source.id, hq)) == [
        ("Order Completed", "plan", "flagged", 1),
        ("Unplanned", "unplanned", "flagged", 1),
    ]


def test_reject_mode_answers_422_and_counts(
    client: TestClient, make_source: MakeSource, token_for: Any, pg_pool: Any
) -> None:
    source, key = make_source(plan_mode="reject")
    hq = token_for(Role.HQ_MARKETER)
    _plan(client, source.id, hq)
    batch = [_call("Order Completed", "a", properties={"price": 3}),
             _call("Order Completed", "a", properties={})]  # fmt: skip
    res = client.post("/v1/events/batch", json={"batch": batch}, auth=basic(key))
    assert res.status_code == 422 and res.headers["content-type"] == "application/problem+json"
    assert res.json()["errors"] == [
        {"field": "batch[1].properties", "message": "'price' is a required property"}
    ]
    with pg_pool.connection() as conn:
        assert repo.events_of(conn, source_id=source.id) == []
    assert _violations(client, source.id, hq) == [("Order Completed", "plan", "rejected", 1)]


def test_a_bad_schema_is_a_422(client: TestClient, make_source: MakeSource, token_for: Any) -> None:
    source, _ = make_source()
    url = f"/v1/events/sources/{source.id}/plan/track/X"
    res = client.put(url, json={"type": "no-such-type"}, headers=token_for(Role.HQ_MARKETER))
    assert res.status_code == 422


def test_consent_required_sources_skip_calls_without_consent(
    client: TestClient, make_source: MakeSource, token_for: Any, pg_pool: Any
) -> None:
    source, key = make_source(consent_required=True)
    granted = {"consent": {"categoryPreferences": {"analytics": True}}}
    batch = [_call("A", "a", context=granted), _call("B", "a")]
    res = client.post("/v1/events/batch", json={"batch": batch}, auth=basic(key))
    assert res.status_code == 200
    assert res.json()["accepted"] == 1 and res.json()["skipped_no_consent"][0]["index"] == 1
    hq = token_for(Role.HQ_MARKETER)
    assert _violations(client, source.id, hq) == [("B", "consent_missing", "rejected", 1)]


def test_identify_ties_past_and_future_events_to_the_profile(
    client: TestClient, make_source: MakeSource, pg_pool: Any
) -> None:
    source, key = make_source()
    anon, email = uuid.uuid4().hex, f"{uuid.uuid4().hex[:8]}@example.org"
    before = client.post("/v1/events/batch", json={"batch": [_call("Viewed", anon)]},
                         auth=basic(key))  # fmt: skip
    assert before.status_code == 200
    ident = {"type": "identify", "anonymousId": anon, "userId": f"u-{anon[:6]}",
             "traits": {"email": email, "first_name": "Ada"}}  # fmt: skip
    assert client.post("/v1/events/batch", json={"batch": [ident]}, auth=basic(key)).is_success
    after = client.post("/v1/events/batch", json={"batch": [_call("Bought", anon)]},
                        auth=basic(key))  # fmt: skip
    assert after.status_code == 200
    by_user = {"type": "track", "event": "Logged", "userId": f"u-{anon[:6]}"}
    assert client.post("/v1/events/track", json=by_user, auth=basic(key)).is_success
    with pg_pool.connection() as conn:
        rows = repo.events_of(conn, source_id=source.id)
        (profile,) = conn.execute(
            "SELECT r.profile_id FROM crm_identifiers i JOIN crm_records r ON r.id = i.record_id"
            " WHERE i.kind = 'email' AND i.value = %s",
            (email,),
        ).fetchone()
    assert len(rows) == 4
    assert {r.profile_id for r in rows} == {profile}
