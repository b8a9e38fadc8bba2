"""Best channel and time through the API on real PostgreSQL: a send without a channel picks one
among the configured channels with the template, an address and a granted consent (the choice
and its posterior means recorded as a decision); outcomes (record_outcome, or message.opened
events in crm_events) and lapsed windows teach it; the segment's pooled counts are the next
member's prior; send_time=best schedules the local hour; the preferences endpoint shows it all."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from psycopg.types.json import Jsonb

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.crm import consent
from cloud.crm.messaging import selection
from cloud.crm.messaging.errors import MessagingInvalidInputError
from tests.integration.cloud.security.crm_helpers import headers, problem

SEND = "/v1/messaging/messages"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def app(
    settings: Settings, pg_pool: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app with e-mail and in-app configured (SMS is not: never picked)."""
    from cloud.api.app import create_app

    path = Path(tmp_path_factory.mktemp("bandit")) / "messaging.json"
    path.write_text(
        json.dumps(
            {
                "channels": {
                    "email": {
                        "type": "smtp", "host": "127.0.0.1", "from_address": "news@mp.test",
                    },
                    "inapp": {"type": "inapp"},
                }
            }
        )
    )  # fmt: skip
    configured = settings.model_copy(update={"messaging_config_file": str(path)})
    with TestClient(create_app(configured, pool=pg_pool)) as c:
        yield c


@pytest.fixture(scope="module")
def marketer(token_for: Any) -> dict[str, str]:
    """A headquarters marketer."""
    return headers(token_for, Role.HQ_MARKETER)


@pytest.fixture(scope="module")
def template(app: TestClient, marketer: dict[str, str]) -> str:
    """A template on e-mail, SMS and in-app."""
    name = f"promo_{uuid.uuid4().hex[:8]}"
    for channel in ("email", "sms", "inapp"):
        res = app.put(
            f"/v1/messaging/templates/{name}/{channel}/en",
            json={"format": "text", "subject": "Sale", "body": "Hi {{ profile.first_name }}"},
            headers=marketer,
        )
        assert res.status_code == 200, res.text
    return name


def _person(
    app: TestClient, marketer: dict[str, str], db: str, *, email_consent: bool, country: str = ""
) -> int:
    """A customer with e-mail and phone, SMS marketing consent granted, e-mail granted (double
    opt-in confirmed) or left pending."""
    tag, phone = uuid.uuid4().hex[:10], f"+49151{uuid.uuid4().int % 10**8:08d}"
    attributes = {"first_name": "Ann", **({"country": country} if country else {})}
    res = app.post(
        "/v1/customers",
        json={
            "identifiers": {
                "email": f"b.{tag}@example.org",
                "phone": phone,
            },
            "attributes": attributes,
        },
        headers=marketer,
    )
    assert res.status_code in (200, 201), res.text
    pid = int(res.json()["profile_id"])
    for channel in ("sms", "email"):
        put = app.put(
            f"/v1/customers/{pid}/consents/{channel}/marketing",
            json={"granted": True, "source": "web-form"},
            headers=marketer,
        )
        assert put.status_code == 200, put.text
    if email_consent:
        with psycopg.connect(db) as conn:
            row = conn.execute(
                "SELECT secret FROM crm_message_outbox WHERE profile_id = %s"
                " AND secret IS NOT NULL",
                (pid,),
            ).fetchone()
            assert row is not None
            consent.confirm(conn, token=row[0], proof="clicked")
    return pid


def _send(app: TestClient, marketer: dict[str, str], pid: int, name: str, **over: Any) -> Any:
    body = {"profile_id": pid, "template": name, "purpose": "marketing", **over}
    res = app.post(SEND, json=body, headers={**marketer, "Idempotency-Key": uuid.uuid4().hex})
    return res


def _mark_sent(db: str, message_id: int, sent_at: datetime | None = None) -> None:
    with psycopg.connect(db) as conn:
        conn.execute(
            "UPDATE crm_message_outbox SET status = 'sent', sent_at = %s WHERE id = %s",
            (sent_at or datetime.now(UTC), message_id),
        )


def _prefs(app: TestClient, marketer: dict[str, str], pid: int) -> dict[str, Any]:
    res = app.get(f"/v1/customers/{pid}/channel-preferences", headers=marketer)
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def _choices(channel: str) -> float:
    value = REGISTRY.get_sample_value(
        "mallpulse_messaging_bandit_choices_total", {"dimension": "channel", "arm": channel}
    )
    return value or 0.0


def _arm(prefs: dict[str, Any], dimension: str, arm: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in prefs[dimension] if a["arm"] == arm)
    return found


def test_the_bandit_picks_among_eligible_channels_and_records_why(
    app: TestClient, marketer: dict[str, str], template: str, database_url: str
) -> None:
    pid = _person(app, marketer, database_url, email_consent=True)
    before = {ch: _choices(ch) for ch in ("email", "inapp")}
    res = _send(app, marketer, pid, template)
    assert res.status_code == 202, res.text
    out = res.json()
    assert _choices(out["channel"]) == before[out["channel"]] + 1
    # SMS has consent and a number but is not configured: e-mail or in-app
    assert out["channel"] in {"email", "inapp"} and out["status"] == "queued"
    [decision] = app.get(f"{SEND}/{out['id']}", headers=marketer).json()["decisions"]
    assert decision["decision"] == "choose"
    assert f"channel {out['channel']} by Thompson sampling" in decision["reason"]
    assert "email 0.500" in decision["reason"] and "inapp 0.500" in decision["reason"]
    assert "sms" not in decision["reason"]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT picked_channel, posterior FROM crm_msg_bandit_trials WHERE message_id = %s",
            (out["id"],),
        ).fetchone()
    assert stored is not None and stored[0] is True
    assert set(stored[1]["channel"]["means"]) == {"email", "inapp"}

    # pending e-mail consent: only in-app is left
    pending = _person(app, marketer, database_url, email_consent=False)
    for _ in range(3):
        assert _send(app, marketer, pending, template).json()["channel"] == "inapp"
    # an explicit channel is still honoured, and recorded as a trial without a decision
    given = _send(app, marketer, pid, template, channel="email")
    assert given.status_code == 202 and given.json()["channel"] == "email"
    assert app.get(f"{SEND}/{given.json()['id']}", headers=marketer).json()["decisions"] == []


def test_a_retry_replays_the_first_choice(
    app: TestClient, marketer: dict[str, str], template: str, database_url: str
) -> None:
    pid = _person(app, marketer, database_url, email_consent=True)
    body = {"profile_id": pid, "template": template, "purpose": "marketing"}
    key = {**marketer, "Idempotency-Key": uuid.uuid4().hex}
    first = app.post(SEND, json=body, headers=key).json()
    for _ in range(5):
        again = app.post(SEND, json=body, headers=key).json()
        assert (again["id"], again["channel"], again["replayed"]) == (
            first["id"],
            first["channel"],
            True,
        )
    with psycopg.connect(database_url) as conn:
        n = conn.execute(
            "SELECT count(*) FROM crm_msg_bandit_trials WHERE profile_id = %s", (pid,)
        ).fetchone()
    assert n == (1,)


def test_no_eligible_channel_is_a_422_and_an_unknown_customer_a_404(
    app: TestClient, marketer: dict[str, str], template: str, database_url: str
) -> None:
    pid = _person(app, marketer, database_url, email_consent=False)
    # no template on in-app and e-mail consent pending: nothing is left
    other = f"only_sms_{uuid.uuid4().hex[:8]}"
    app.put(
        f"/v1/messaging/templates/{other}/sms/en",
        json={"format": "text", "body": "Hi"},
        headers=marketer,
    )
    err = problem(_send(app, marketer, pid, other), 422)
    assert "no channel for customer" in err["detail"] and "consent" in err["detail"]
    problem(_send(app, marketer, 2**62, template), 404)
    problem(app.get(f"/v1/customers/{2**62}/channel-preferences", headers=marketer), 404)
    problem(_send(app, marketer, pid, template, send_time="soon"), 422)


def test_outcomes_teach_it_and_the_segment_prior_carries_to_new_members(
    app: TestClient, marketer: dict[str, str], template: str, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        seg = conn.execute(
            "INSERT INTO crm_segments (name, kind, created_by) VALUES (%s, 'static', 'test')"
            " RETURNING id",
            (f"bandit {uuid.uuid4().hex[:8]}",),
        ).fetchone()
    assert seg is not None
    pid = _person(app, marketer, database_url, email_consent=True)
    newcomer = _person(app, marketer, database_url, email_consent=True)
    with psycopg.connect(database_url) as conn:
        for who in (pid, newcomer):
            conn.execute(
                "INSERT INTO crm_segment_members (segment_id, profile_id, entered_at)"
                " VALUES (%s, %s, now())",
                (seg[0], who),
            )
    picks, sent_times = [], []
    for i in range(16):
        sent = _send(app, marketer, pid, template).json()
        picks.append(sent["channel"])
        at = datetime.now(UTC) - timedelta(hours=0 if sent["channel"] == "email" else 100)
        sent_times.append(at)
        _mark_sent(database_url, sent["id"], at)
        if sent["channel"] == "email":
            with psycopg.connect(database_url) as conn:
                if i % 2:  # the tracking code's call
                    assert selection.record_outcome(conn, sent["id"], "opened") is True
                    assert selection.record_outcome(conn, sent["id"], "clicked") is False
                else:  # an open pixel's event in the behavioural stream
                    conn.execute(
                        "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id,"
                        " type, event, profile_id, properties)"
                        " VALUES (now(), now(), 'tracking', %s, 'track', 'message.opened', %s,"
                        " %s)",
                        (uuid.uuid4().hex, pid, Jsonb({"message_id": str(sent["id"])})),
                    )
        # in-app: never opened, and sent 100 h ago: its window has passed
    prefs = _prefs(app, marketer, pid)
    assert _prefs(app, marketer, pid) == prefs  # settled once: a second read counts nothing
    email, inapp = _arm(prefs, "channels", "email"), _arm(prefs, "channels", "inapp")
    assert email["trials"] == email["successes"] == picks.count("email") >= 1
    assert (inapp["trials"], inapp["successes"]) == (picks.count("inapp"), 0)
    assert email["mean"] > inapp["mean"] and email["low"] < email["mean"] < email["high"]
    assert picks[8:].count("email") >= 5  # it learned (P(fail) is far below 1e-6)
    assert prefs["segments"] == [seg[0]] and prefs["window_h"] == 72
    # each trial also counts for the local (here UTC) hour bucket it was sent in, if any
    buckets = [selection.DEFAULT.bucket_of(t.hour) for t in sent_times]
    expected = {str(h): buckets.count(h) for h in selection.DEFAULT.hour_buckets}
    assert {a["arm"]: a["trials"] for a in prefs["hours"]} == expected

    fresh = _prefs(app, marketer, newcomer)
    assert (_arm(fresh, "channels", "email")["trials"], fresh["segments"]) == (0, [seg[0]])
    prior = _arm(fresh, "channels", "email")
    assert prior["prior_alpha"] + prior["prior_beta"] == pytest.approx(
        min(10.0, 2 + picks.count("email"))
    )
    assert prior["mean"] > _arm(fresh, "channels", "inapp")["mean"]
    assert _arm(fresh, "channels", "sms")["prior_alpha"] == 1.0  # no data on SMS: uniform


def test_best_time_schedules_the_local_hour_bucket(
    app: TestClient, marketer: dict[str, str], template: str, database_url: str
) -> None:
    pid = _person(app, marketer, database_url, email_consent=True, country="CN")
    res = _send(app, marketer, pid, template, channel="email", send_time="best")
    assert res.status_code == 202, res.text
    out = res.json()
    [decision] = app.get(f"{SEND}/{out['id']}", headers=marketer).json()["decisions"]
    assert "in Asia/Shanghai" in decision["reason"] and "Thompson" not in decision["reason"]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT hour_bucket, time_zone FROM crm_msg_bandit_trials WHERE message_id = %s",
            (out["id"],),
        ).fetchone()
    assert row is not None and row[1] == "Asia/Shanghai" and row[0] in (8, 11, 14, 17)
    if out["not_before"] is None:  # inside the bucket now
        assert selection.DEFAULT.bucket_of(datetime.now(SHANGHAI).hour) == row[0]
    else:
        local = datetime.fromisoformat(out["not_before"]).astimezone(SHANGHAI)
        assert (local.hour, local.minute) == (row[0], 0)
        assert datetime.fromisoformat(out["not_before"]) > datetime.now(UTC)
    prefs = _prefs(app, marketer, pid)
    assert prefs["time_zone"] == "Asia/Shanghai" and [a["arm"] for a in prefs["hours"]] == [
        "8",
        "11",
        "14",
        "17",
    ]


def test_record_outcome_refuses_an_unknown_outcome_and_ignores_a_late_one(
    app: TestClient, marketer: dict[str, str], template: str, database_url: str
) -> None:
    pid = _person(app, marketer, database_url, email_consent=True)
    sent = _send(app, marketer, pid, template, channel="email").json()
    _mark_sent(database_url, sent["id"], datetime.now(UTC) - timedelta(hours=73))
    with psycopg.connect(database_url) as conn:
        with pytest.raises(MessagingInvalidInputError, match="unknown outcome"):
            selection.record_outcome(conn, sent["id"], "liked")
        assert selection.record_outcome(conn, sent["id"], "opened") is False  # window passed
        assert selection.record_outcome(conn, 2**62, "opened") is False
        # the periodic sweep settles it without anybody reading this customer
        later = datetime.now(UTC) + timedelta(hours=73)
        assert selection.settle_due(conn, now=later, limit=10_000) >= 1
        row = conn.execute(
            "SELECT outcome FROM crm_msg_bandit_trials WHERE message_id = %s", (sent["id"],)
        ).fetchone()
        assert row == ("no_engagement",)
    email = _arm(_prefs(app, marketer, pid), "channels", "email")
    assert (email["trials"], email["successes"]) == (1, 0)


def test_the_hourly_task_settles_lapsed_trials(
    app: TestClient, marketer: dict[str, str], template: str, database_url: str, settings: Any
) -> None:
    from cloud.crm.messaging.tasks import run_bandit_settle

    pid = _person(app, marketer, database_url, email_consent=True)
    sent = _send(app, marketer, pid, template, channel="email").json()
    _mark_sent(database_url, sent["id"], datetime.now(UTC) - timedelta(hours=73))
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE crm_msg_bandit_trials SET created_at = now() - interval '73 hours'"
            " WHERE message_id = %s",
            (sent["id"],),
        )
    assert run_bandit_settle(settings) >= 1
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT outcome FROM crm_msg_bandit_trials WHERE message_id = %s", (sent["id"],)
        ).fetchone()
    assert row == ("no_engagement",)
