"""Campaigns over the real app and database: queued to a segment's current members (merged
profiles counted once, customers without an address left out and counted), once per
Idempotency-Key (409 on reuse with another body), to a list of customers, 404/422 for a missing
segment or template; then dispatched through a real SMTP server with the policy applied."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.core.security import Role
from cloud.crm.messaging import campaigns
from cloud.crm.messaging import repository as repo
from cloud.crm.messaging.channels.email import SmtpConfig, SmtpEmailChannel
from cloud.crm.messaging.config import MessagingConfig
from cloud.crm.messaging.dispatch import Dispatcher
from cloud.crm.messaging.errors import MessagingInvalidInputError
from cloud.crm.messaging.service import address_of
from tests.integration.cloud.security.crm_helpers import customer, headers, problem
from tests.support.smtp import SmtpSink

pytestmark = pytest.mark.integration
C = "/v1/messaging/campaigns"


@pytest.fixture(scope="module")
def marketer(token_for: Any) -> dict[str, str]:
    """A headquarters marketer."""
    return headers(token_for, Role.HQ_MARKETER)


def _segment(url: str, members: list[int]) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO crm_segments (name, kind, created_by) VALUES (%s, 'static', 't')"
            " RETURNING id",
            (f"campaign-{uuid.uuid4().hex[:10]}",),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO crm_segment_members (segment_id, profile_id, entered_at)"
            " SELECT %s, unnest(%s::bigint[]), now()",
            (row[0], members),
        )
    return int(row[0])


def _template(client: TestClient, auth: dict[str, str], channel: str = "email") -> str:
    name = f"c_{uuid.uuid4().hex[:10]}"
    body = {"format": "text", "subject": "Hi {{ profile.first_name }}", "body": "{{ offer }}"}
    res = client.put(f"/v1/messaging/templates/{name}/{channel}/en", json=body, headers=auth)
    assert res.status_code == 200, res.text
    return name


def _outbox(url: str, campaign_id: int) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT profile_id, address FROM crm_message_outbox WHERE campaign_id = %s"
            " ORDER BY profile_id",
            (campaign_id,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_a_segment_campaign_is_queued_once_per_key_and_person(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    people = [customer(client, marketer, first_name=n) for n in ("Ann", "Bo", "Cy")]
    merged, _ = customer(client, marketer)
    phone_only = client.post(
        "/v1/customers", json={"identifiers": {"phone": "+8613800138000"}}, headers=marketer
    ).json()["profile_id"]
    with psycopg.connect(database_url) as conn:  # `merged` was merged into Ann
        conn.execute(
            "UPDATE crm_profiles SET merged_into = %s WHERE id = %s", (people[0][0], merged)
        )
    segment = _segment(database_url, [p for p, _ in people] + [merged, phone_only])
    body = {"name": "Spring", "channel": "email", "template": _template(client, marketer),
            "variables": {"offer": "20% off"}, "audience": {"segment_id": segment}}  # fmt: skip
    key = {"Idempotency-Key": f"camp-{uuid.uuid4().hex}", **marketer}
    res = client.post(C, json=body, headers=key)
    assert res.status_code == 202, res.text
    got = res.json()
    assert (got["audience"], got["queued"], got["without_address"]) == (4, 3, 1)
    assert got["statuses"] == {"queued": 3} and got["replayed"] is False
    assert _outbox(database_url, got["id"]) == sorted(people)
    again = client.post(C, json=body, headers=key)
    assert again.status_code == 202 and again.json()["id"] == got["id"]
    assert again.json()["replayed"] is True and len(_outbox(database_url, got["id"])) == 3
    err = problem(client.post(C, json={**body, "name": "Other"}, headers=key), 409)
    assert "already used" in err["detail"]
    shown = client.get(f"{C}/{got['id']}", headers=marketer).json()
    assert shown["queued"] == 3 and shown["statuses"] == {"queued": 3}


def test_a_list_campaign_on_inapp_reaches_each_listed_customer(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    ids = [customer(client, marketer)[0] for _ in range(3)]
    body = {"name": "Inbox", "channel": "inapp", "template": _template(client, marketer, "inapp"),
            "purpose": "transactional", "audience": {"profile_ids": [*ids, ids[0]]}}  # fmt: skip
    res = client.post(C, json=body, headers={"Idempotency-Key": uuid.uuid4().hex, **marketer})
    assert res.status_code == 202, res.text
    assert (res.json()["audience"], res.json()["queued"]) == (3, 3)
    assert _outbox(database_url, res.json()["id"]) == [(i, f"profile:{i}") for i in sorted(ids)]


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        ({"audience": {"segment_id": 9_000_000_000}}, 404, "segment 9000000000 does not exist"),
        ({"template": "no_such_template"}, 404, "no template 'no_such_template'"),
        ({"audience": {"segment_id": 1, "profile_ids": [1]}}, 422, "audience"),
        ({"audience": {}}, 422, "audience"),
        ({"audience": {"profile_ids": []}}, 422, "profile_ids"),
        ({"name": ""}, 422, "name"),
        ({"channel": "fax"}, 422, "channel"),
        ({"variables": {"offer": "a\u0000b"}}, 422, "variables"),
        ({"audience": {"profile_ids": [1] * 10_001}}, 422, "profile_ids"),
    ],
)
def test_a_bad_campaign_is_a_problem_naming_it(
    client: TestClient,
    marketer: dict[str, str],
    database_url: str,
    change: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    segment = _segment(database_url, [customer(client, marketer)[0]])
    body = {"name": "Bad", "channel": "email", "template": _template(client, marketer),
            "audience": {"segment_id": segment}, **change}  # fmt: skip
    res = client.post(C, json=body, headers={"Idempotency-Key": uuid.uuid4().hex, **marketer})
    assert detail in str(problem(res, status)), res.text


def test_a_campaign_without_an_idempotency_key_is_refused(
    client: TestClient, marketer: dict[str, str]
) -> None:
    res = client.post(C, json={"name": "x"}, headers=marketer)
    assert "Idempotency-Key" in str(problem(res, 422))


def test_a_queued_campaign_is_sent_within_the_policy(
    fresh_database: Callable[..., str], smtp_sink: SmtpSink, smtp_config: SmtpConfig
) -> None:
    url = fresh_database()
    with psycopg.connect(url) as conn:
        ids = [
            int(r[0])
            for r in conn.execute(
                "INSERT INTO crm_profiles (identified, attributes)"
                ' SELECT true, \'{"first_name": "Ann"}\'::jsonb FROM generate_series(1, 4)'
                " RETURNING id"
            ).fetchall()
        ]
        conn.execute(
            "INSERT INTO crm_records (profile_id, source, attributes)"
            " SELECT unnest(%s::bigint[]), 'test', '{}'::jsonb",
            (ids,),
        )
        conn.execute(
            "INSERT INTO crm_identifiers (record_id, kind, value, raw_value)"
            " SELECT r.id, 'email', 'p' || r.profile_id || '@example.com', 'x' FROM crm_records r"
        )
        conn.execute(  # three consented, the fourth never asked
            "INSERT INTO crm_consents (profile_id, channel, purpose, status, source, updated_at)"
            " SELECT unnest(%s::bigint[]), 'email', 'marketing', 'granted', 'test', now()",
            (ids[:3],),
        )
        repo.upsert_template(
            conn, name="sale", channel="email", locale="en", format="text",
            subject="Sale for {{ profile.first_name }}", body="{{ offer }}",
        )  # fmt: skip
        segment = _segment_on(conn, ids)
        body = campaigns.CampaignCreate(
            name="Sale", channel="email", template="sale", variables={"offer": "Half price"},
            audience=campaigns.SegmentAudience(segment_id=segment),
        )  # fmt: skip
        made = campaigns.queue(conn, body, idempotency_key="k1", actor="tester")
        conn.commit()
        assert made.queued == 4
        # 06:00 UTC: outside quiet hours in the default zone (UTC)
        config = MessagingConfig(channels={"email": smtp_config})
        channel = SmtpEmailChannel(smtp_config)
        when = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
        counts = Dispatcher(config=config, channels={"email": channel}, clock=lambda: when).run(
            conn
        )
        channel.close()
        assert (counts.sent, counts.skipped) == (3, 1)
        assert campaigns.get(conn, made.id).statuses == {"sent": 3, "skipped": 1}
    to = sorted(
        str(message_from_bytes(m.content, policy=policy.default)["To"])
        for m in smtp_sink.received()
    )
    assert to == [f"p{i}@example.com" for i in sorted(ids[:3])]


def _segment_on(conn: psycopg.Connection[Any], members: list[int]) -> int:
    row = conn.execute(
        "INSERT INTO crm_segments (name, kind, created_by) VALUES ('s', 'static', 't') RETURNING id"
    ).fetchone()
    assert row is not None
    conn.execute(
        "INSERT INTO crm_segment_members (segment_id, profile_id, entered_at)"
        " SELECT %s, unnest(%s::bigint[]), now()",
        (row[0], members),
    )
    return int(row[0])


def test_a_message_in_doubt_is_listed_and_resolved_once_by_a_reviewer(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    pid, email = customer(client, marketer)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO crm_message_outbox (profile_id, channel, address, template, status,"
            " attempts) VALUES (%s, 'email', %s, 'receipt', 'uncertain', 1) RETURNING id",
            (pid, email),
        ).fetchone()
    assert row is not None
    mid = int(row[0])
    listed = client.get("/v1/messaging/review", params={"after": mid - 1}, headers=marketer)
    assert [m["id"] for m in listed.json()][:1] == [mid]
    url = f"/v1/messaging/messages/{mid}/review"
    res = client.post(
        url, json={"outcome": "resend", "note": "not in the relay's log"}, headers=marketer
    )
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "queued"
    assert res.json()["decisions"][-1]["reason"].endswith("resend (not in the relay's log)")
    again = problem(client.post(url, json={"outcome": "drop"}, headers=marketer), 409)
    assert "not in doubt (status 'queued')" in again["detail"]
    problem(client.post("/v1/messaging/messages/9000000000/review", json={"outcome": "drop"},
                        headers=marketer), 404)  # fmt: skip
    problem(client.post(url, json={"outcome": "maybe"}, headers=marketer), 422)


@st.composite
def _identities(draw: st.DrawFn) -> dict[str, Any]:
    """Five people with one or two records each, e-mails and phones (some shared, some blocked)
    seen at various times."""
    ident = st.tuples(
        st.integers(0, 4), st.integers(0, 1), st.sampled_from(["email", "phone"]),
        st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 3),
    )  # fmt: skip
    return {
        "idents": draw(st.lists(ident, max_size=14)),
        "blocked": draw(st.sets(st.sampled_from(["a", "b", "c", "d"]), max_size=2)),
    }


@pytest.fixture
def one_database(fresh_database: Callable[..., str]) -> str:
    """A fresh database shared by every example of a hypothesis test (each rolls back)."""
    return fresh_database()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=_identities())
def test_a_campaign_addresses_each_person_as_a_single_send_would(
    one_database: str, world: dict[str, Any]
) -> None:
    with psycopg.connect(one_database) as conn:
        try:
            for channel in ("email", "sms"):
                repo.upsert_template(
                    conn,
                    name="t",
                    channel=channel,
                    locale="en",
                    format="text",
                    body="x",
                    subject=None,
                )
            pids = [int(r[0]) for r in conn.execute(
                "INSERT INTO crm_profiles (identified) SELECT true FROM generate_series(1, 5)"
                " RETURNING id").fetchall()]  # fmt: skip
            records = {
                (p, k): int(r[0])
                for p in range(5)
                for k in range(2)
                for r in conn.execute(
                    "INSERT INTO crm_records (profile_id, source) VALUES (%s, 't') RETURNING id",
                    (pids[p],),
                ).fetchall()
            }
            base = datetime(2026, 1, 1, tzinfo=UTC)
            for p, k, kind, value, minute in world["idents"]:
                addr = f"{value}@example.com" if kind == "email" else f"+86138001380{ord(value)}"
                conn.execute(
                    "INSERT INTO crm_identifiers (record_id, kind, value, raw_value, created_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (records[p, k], kind, addr, addr, base + timedelta(minutes=minute)),
                )
            for value in world["blocked"]:
                conn.execute(
                    "INSERT INTO crm_identifier_blocks (kind, value, reason)"
                    " VALUES ('email', %s, 'test')",
                    (f"{value}@example.com",),
                )
            for channel in ("email", "sms"):
                made = campaigns.queue(
                    conn,
                    campaigns.CampaignCreate(
                        name="c", channel=channel, template="t",
                        audience=campaigns.ListAudience(profile_ids=pids),
                    ),
                    idempotency_key=f"k-{channel}", actor="t",
                )  # fmt: skip
                queued: dict[int, str] = dict(
                    conn.execute(
                        "SELECT profile_id, address FROM crm_message_outbox WHERE campaign_id = %s",
                        (made.id,),
                    ).fetchall()
                )
                for pid in pids:
                    try:
                        expected: str | None = address_of(conn, pid, channel)
                    except MessagingInvalidInputError:
                        expected = None
                    assert queued.get(pid) == expected, (channel, pid)
        finally:
            conn.rollback()
