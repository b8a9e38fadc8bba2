"""The dispatcher over a real SMTP server and database: consent confirmations from the double
opt-in flow are delivered, the policy decides at send time with a recorded reason, transient
errors are retried with backoff, permanent ones fail, idempotency keys send once, and a worker
lost mid-send is never followed by a second send on a channel that cannot drop duplicates."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.crm import consent
from cloud.crm.identity.service import ingest_record
from cloud.crm.messaging import repository as repo
from cloud.crm.messaging import service
from cloud.crm.messaging.channels.base import build_channel, parse_config
from cloud.crm.messaging.channels.email import SmtpConfig
from cloud.crm.messaging.config import MessagingConfig
from cloud.crm.messaging.dispatch import Dispatcher
from cloud.crm.messaging.errors import MessagingConflictError
from cloud.db.repositories import crm_consent
from tests.support.smtp import SmtpSink

MJML = (
    "<mjml><mj-body><mj-section><mj-column><mj-text>{{ greeting }} {{ profile.first_name }}"
    "</mj-text></mj-column></mj-section></mj-body></mjml>"
)


@dataclass
class Clock:
    """A settable clock."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Env:
    """A fresh database, a dispatcher on it and the SMTP sink."""

    conn: psycopg.Connection[Any]
    dispatcher: Dispatcher
    sink: SmtpSink
    clock: Clock

    def person(self, email: str, **attributes: Any) -> int:
        attributes.setdefault("first_name", "Ann")
        rec = ingest_record(
            self.conn, source="web", identifiers={"email": email}, attributes=attributes
        )
        self.conn.commit()
        return rec.profile_id

    def row(self, message_id: int) -> dict[str, Any]:
        found = repo.get_message(self.conn, message_id)
        self.conn.commit()
        assert found is not None
        return found

    def reasons(self, message_id: int) -> list[tuple[str, str]]:
        out = [(d["decision"], d["reason"]) for d in repo.decisions(self.conn, message_id)]
        self.conn.commit()
        return out

    def queue(self, pid: int, *, key: str, purpose: str = "marketing", **kw: Any) -> int:
        args: dict[str, Any] = {
            "channel": "email", "template": "spring_sale", "variables": {"greeting": "Hello"},
            "priority": "normal", "locale": None, **kw,
        }  # fmt: skip
        out = service.send(self.conn, profile_id=pid, purpose=purpose, idempotency_key=key, **args)  # type: ignore[arg-type]
        self.conn.commit()
        return int(out["id"])


@pytest.fixture
def env(
    fresh_database: Callable[..., str], smtp_sink: SmtpSink, smtp_config: SmtpConfig
) -> Iterator[Env]:
    url = fresh_database()
    config = MessagingConfig(
        channels={"email": smtp_config, "inapp": parse_config({"type": "inapp"})},
        lease_s=30,
        backoff_base_s=60,
        max_attempts=3,
    )
    channels = {name: build_channel(cfg, url) for name, cfg in config.channels.items()}
    # 06:00 UTC is 14:00 in Shanghai: outside quiet hours for CN customers
    clock = Clock(datetime(2026, 12, 5, 6, 0, tzinfo=UTC))
    with psycopg.connect(url) as conn:
        for locale, greeting in (("en", "Spring sale"), ("zh-CN", "春季促销")):
            repo.upsert_template(
                conn, name="spring_sale", channel="email", locale=locale, format="mjml",
                subject=f"{greeting} {{{{ profile.first_name }}}}", body=MJML,
            )  # fmt: skip
        repo.upsert_template(
            conn, name="spring_sale", channel="inapp", locale="en", format="text",
            subject="Spring sale", body="{{ greeting }} {{ profile.first_name }}",
        )  # fmt: skip
        conn.commit()
        yield Env(conn, Dispatcher(config=config, channels=channels, clock=clock), smtp_sink, clock)
    for channel in channels.values():
        getattr(channel, "close", lambda: None)()


def _grant_email(env: Env, pid: int) -> None:
    consent.set_consent(
        env.conn, profile_id=pid, channel="email", purpose="marketing", granted=True,
        source="web-form", actor="tester", now=env.clock(),
    )  # fmt: skip
    secret = env.conn.execute(
        "SELECT secret FROM crm_message_outbox WHERE profile_id = %s AND secret IS NOT NULL",
        (pid,),
    ).fetchone()
    assert secret is not None
    consent.confirm(env.conn, token=secret[0], proof="clicked", now=env.clock())
    env.conn.execute("UPDATE crm_message_outbox SET status = 'sent', sent_at = NULL")
    env.conn.commit()


def test_the_double_opt_in_confirmation_is_delivered_in_the_customers_language(env: Env) -> None:
    pid = env.person("li.wei@example.com", language="zh-CN", first_name="Wei")
    consent.set_consent(
        env.conn, profile_id=pid, channel="email", purpose="marketing", granted=True,
        source="web-form", actor="tester",
    )  # fmt: skip
    env.conn.commit()
    [(mid, token)] = env.conn.execute("SELECT id, secret FROM crm_message_outbox").fetchall()
    counts = env.dispatcher.run(env.conn)
    assert counts.sent == 1
    [got] = env.sink.received()
    msg = message_from_bytes(got.content, policy=policy.default)
    assert got.rcpt_tos == ["li.wei@example.com"] and msg["Subject"] == "请确认您的订阅"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    assert f"https://mallpulse.example/consents/confirm?token={token}" in body.get_content()
    row = env.row(mid)
    assert row["status"] == "sent" and row["secret"] is None and row["sent_at"] is not None
    assert row["provider_id"] == msg["Message-ID"]
    # the consent flow's own reader sees nothing left to send, and the token still confirms
    assert crm_consent.unsent_messages(env.conn) == []
    assert consent.confirm(env.conn, token=token, proof="clicked")["status"] == "granted"
    assert env.dispatcher.run(env.conn).sent == 0 and len(env.sink.received()) == 1


def test_marketing_without_consent_is_skipped_with_the_reason(env: Env) -> None:
    pid = env.person("ann@example.com", country="CN")
    mid = env.queue(pid, key="k1")
    assert env.dispatcher.run(env.conn).skipped == 1
    assert env.row(mid)["status"] == "skipped" and env.sink.received() == []
    assert env.reasons(mid) == [("skipped", "no marketing consent on email (never given)")]


def test_quiet_hours_defer_to_the_local_morning_and_the_message_then_goes(env: Env) -> None:
    pid = env.person("wang@example.com", country="CN", first_name="Fang", language="zh-CN")
    _grant_email(env, pid)
    env.clock.now = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
    mid = env.queue(pid, key="k-quiet")
    assert env.dispatcher.run(env.conn).deferred == 1
    row = env.row(mid)
    assert row["status"] == "queued" and row["not_before"] == datetime(
        2026, 12, 6, 0, 0, tzinfo=UTC
    )
    assert "quiet hours 21:00-08:00 in Asia/Shanghai" in env.reasons(mid)[0][1]
    env.clock.now = datetime(2026, 12, 5, 23, 59, tzinfo=UTC)
    assert env.dispatcher.run(env.conn).sent == 0  # not due yet
    env.clock.now = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)
    assert env.dispatcher.run(env.conn).sent == 1
    [got] = env.sink.received()
    msg = message_from_bytes(got.content, policy=policy.default)
    assert msg["Subject"] == "春季促销 Fang"
    assert [d for d, _ in env.reasons(mid)] == ["defer", "send", "sent"]


def test_the_frequency_cap_defers_the_fourth_message_of_the_day(env: Env) -> None:
    pid = env.person("cap@example.com", country="CN")
    _grant_email(env, pid)
    ids = [env.queue(pid, key=f"cap-{i}") for i in range(4)]
    counts = env.dispatcher.run(env.conn)
    assert (counts.sent, counts.deferred) == (3, 1), [env.reasons(i) for i in ids]
    assert "frequency cap 3/day on all channels" in env.reasons(ids[3])[0][1]
    assert env.row(ids[3])["not_before"] == env.clock.now + timedelta(days=1)


def test_transient_errors_retry_with_backoff_and_permanent_ones_fail(env: Env) -> None:
    pid = env.person("retry@example.com")
    mid = env.queue(pid, key="t1", purpose="transactional")
    env.sink.on_data = lambda _m: "451 4.3.0 greylisted"
    assert env.dispatcher.run(env.conn).retried == 1
    row = env.row(mid)
    delay = (row["not_before"] - env.clock.now).total_seconds()
    assert row["status"] == "queued" and row["attempts"] == 1 and 0 <= delay <= 60  # full jitter
    assert env.reasons(mid)[-1][0] == "retry" and "451" in env.reasons(mid)[-1][1]
    env.clock.now += timedelta(seconds=61)
    assert env.dispatcher.run(env.conn).retried == 1
    second = (env.row(mid)["not_before"] - env.clock.now).total_seconds()
    assert 0 <= second <= 120  # the step doubled
    env.clock.now += timedelta(seconds=121)
    assert env.dispatcher.run(env.conn).failed == 1  # max_attempts=3
    assert env.row(mid)["status"] == "failed"
    assert "gave up after 3 attempts" in str(env.row(mid)["last_error"])
    other = env.queue(pid, key="t2", purpose="transactional")
    env.sink.on_data = lambda _m: "554 5.7.1 rejected"
    assert env.dispatcher.run(env.conn).failed == 1
    assert env.row(other)["attempts"] == 1 and "permanent: SMTP 554" in str(
        env.row(other)["last_error"]
    )


def test_an_undefined_template_variable_fails_the_message_with_the_reason(env: Env) -> None:
    pid = env.person("tpl@example.com")
    mid = env.queue(pid, key="tpl", purpose="transactional", variables={})
    assert env.dispatcher.run(env.conn).failed == 1
    assert "undefined variable: 'greeting' is undefined" in str(env.row(mid)["last_error"])


def test_an_idempotency_key_queues_once(env: Env) -> None:
    pid = env.person("idem@example.com")
    first = env.queue(pid, key="same", purpose="transactional")
    assert env.queue(pid, key="same", purpose="transactional") == first
    with pytest.raises(MessagingConflictError, match="already used with a different request"):
        env.queue(pid, key="same", purpose="transactional", variables={"greeting": "Hi"})
    env.conn.rollback()
    assert env.dispatcher.run(env.conn).sent == 1
    assert env.dispatcher.run(env.conn).sent == 0 and len(env.sink.received()) == 1


def test_a_send_whose_worker_vanished_is_never_repeated_on_email_but_is_on_inapp(env: Env) -> None:
    pid = env.person("lost@example.com")
    mail = env.queue(pid, key="lost-mail", purpose="transactional")
    inapp = env.queue(pid, key="lost-inapp", purpose="transactional", channel="inapp")
    claimed = env.conn.execute(
        "UPDATE crm_message_outbox SET status = 'sending', lease_token = gen_random_uuid(),"
        " lease_until = %s RETURNING id",
        (env.clock.now - timedelta(seconds=1),),
    ).fetchall()
    env.conn.commit()
    assert sorted(r[0] for r in claimed) == sorted([mail, inapp])
    counts = env.dispatcher.run(env.conn)
    assert (counts.uncertain, counts.sent) == (1, 1)
    assert env.row(mail)["status"] == "uncertain" and env.sink.received() == []
    assert "not resent" in env.reasons(mail)[-1][1]
    assert env.row(inapp)["status"] == "sent"
    assert len(service.inbox(env.conn, profile_id=pid, limit=10, before=None)) == 1


def test_an_expired_claim_that_never_started_is_sent(env: Env) -> None:
    pid = env.person("claim@example.com")
    mid = env.queue(pid, key="claim", purpose="transactional")
    env.conn.execute(
        "UPDATE crm_message_outbox SET status = 'claimed', lease_token = gen_random_uuid(),"
        " lease_until = %s",
        (env.clock.now - timedelta(seconds=1),),
    )
    env.conn.commit()
    assert env.dispatcher.run(env.conn).sent == 1 and env.row(mid)["status"] == "sent"


_CHANNELS = ("email", "sms")


@st.composite
def _facts_world(draw: st.DrawFn) -> dict[str, Any]:
    """Six people, some merged into earlier ones, with consents, suppressions and past sends."""
    n = 6
    merged = {j: draw(st.sampled_from(range(j))) for j in range(1, n) if draw(st.booleans())}
    cell = st.tuples(st.integers(0, n - 1), st.sampled_from(_CHANNELS))
    consents = draw(
        st.dictionaries(cell, st.sampled_from(["granted", "denied", "pending"]), max_size=8)
    )
    suppressions = draw(
        st.dictionaries(cell, st.sampled_from(["hard_bounce", "complaint"]), max_size=5)
    )
    sends = draw(
        st.lists(
            st.tuples(cell, st.integers(0, 240), st.sampled_from(["marketing", "transactional"])),
            max_size=10,
        )
    )
    asked = draw(st.lists(cell, min_size=1, max_size=8))
    return {"n": n, "merged": merged, "consents": consents, "suppressions": suppressions,
            "sends": sends, "asked": asked}  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=_facts_world())
def test_the_batch_policy_facts_equal_the_per_message_ones(env: Env, world: dict[str, Any]) -> None:
    conn, now = env.conn, env.clock.now
    try:
        ids = [
            int(r[0])
            for r in conn.execute(
                "INSERT INTO crm_profiles (identified, attributes)"
                " SELECT true, jsonb_build_object('n', g) FROM generate_series(1, %s) g"
                " RETURNING id",
                (world["n"],),
            ).fetchall()
        ]
        for j, i in world["merged"].items():
            conn.execute("UPDATE crm_profiles SET merged_into = %s WHERE id = %s", (ids[i], ids[j]))
        for k, ((p, ch), status) in enumerate(world["consents"].items()):
            conn.execute(
                "INSERT INTO crm_consents (profile_id, channel, purpose, status, source,"
                " updated_at) VALUES (%s, %s, 'marketing', %s, 't', %s)",
                (ids[p], ch, status, now - timedelta(minutes=k)),
            )
        for (p, ch), reason in world["suppressions"].items():
            repo.suppress(conn, ids[p], ch, reason)
        for (p, ch), hours, purpose in world["sends"]:
            conn.execute(
                "INSERT INTO crm_message_outbox (profile_id, channel, address, template, purpose,"
                " status, sent_at) VALUES (%s, %s, 'a', 't', %s, 'sent', %s)",
                (ids[p], ch, purpose, now - timedelta(hours=hours)),
            )
        rows = [
            {"id": -k - 1, "profile_id": ids[p], "channel": ch}
            for k, (p, ch) in enumerate(world["asked"])
        ]
        since = now - timedelta(days=7)
        batch = repo.policy_facts_batch(conn, rows, since)
        for row in rows:
            one = repo.policy_facts(conn, row["profile_id"], row["channel"], since)
            got = batch[row["id"]]
            assert (got["consent"], got["suppression"], got["attributes"]) == (
                one["consent"], one["suppression"], one["attributes"],
            )  # fmt: skip
            assert sorted(map(tuple, got["recent"])) == sorted(map(tuple, one["recent"]))
    finally:
        conn.rollback()


@pytest.mark.parametrize(
    ("started", "expected"),
    [
        # the first unrecorded send of a lost lease may have been accepted; the rest were not
        ("now()", ["uncertain", "sent", "sent"]),
        # begun before the database's last start: recorded outcomes may be lost, all in doubt
        ("'2000-01-01'::timestamptz", ["uncertain", "uncertain", "uncertain"]),
    ],
)
def test_a_lost_lease_leaves_only_its_first_unrecorded_send_in_doubt(
    env: Env, started: str, expected: list[str]
) -> None:
    pid = env.person("order@example.com")
    ids = [env.queue(pid, key=f"order-{i}", purpose="transactional") for i in range(3)]
    env.conn.execute(
        "UPDATE crm_message_outbox SET status = 'sending', lease_token = %s, lease_until = %s,"
        f" send_seq = id - %s + 1, send_started_at = {started}",
        (uuid.uuid4(), env.clock.now - timedelta(seconds=1), ids[0]),
    )
    env.conn.commit()
    env.dispatcher.run(env.conn)
    assert [env.row(i)["status"] for i in ids] == expected
    assert len(env.sink.received()) == expected.count("sent")
    if expected[1] == "sent":
        assert "worker lost before handing this message over" in env.reasons(ids[1])[0][1]
