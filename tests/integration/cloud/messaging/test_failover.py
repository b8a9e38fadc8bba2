"""Provider routes over real SMTP servers: a transient refusal moves the message to the next
provider (recorded), an open circuit skips the primary, an unknown outcome is never retried
elsewhere, both providers down is a retry with backoff, and the token bucket in PostgreSQL caps
what every worker together sends; plus the tables of the pure rules (backoff, outcome)."""

from __future__ import annotations

import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from cloud.crm.messaging import repository as repo
from cloud.crm.messaging.channels.base import (
    ChannelError,
    PermanentChannelError,
    RateLimitedError,
    TransientChannelError,
)
from cloud.crm.messaging.channels.email import SmtpConfig, SmtpEmailChannel
from cloud.crm.messaging.config import MessagingConfig, RouteConfig
from cloud.crm.messaging.dispatch import Circuit, Dispatcher, Provider, outcome_unknown
from tests.support.smtp import SmtpSink, free_port, start_sink

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


@dataclass
class World:
    """A fresh database with customers, two SMTP servers and a dispatcher factory."""

    url: str
    conn: psycopg.Connection[Any]
    primary: SmtpSink
    secondary: SmtpSink
    opened: list[SmtpEmailChannel] = field(default_factory=list)

    def smtp(self, sink: SmtpSink | int) -> SmtpEmailChannel:
        port = sink if isinstance(sink, int) else sink.port
        channel = SmtpEmailChannel(
            SmtpConfig(host="127.0.0.1", port=port, starttls=False, from_address="n@mp.test")
        )
        self.opened.append(channel)
        return channel

    def dispatcher(self, providers: list[Provider], **config: Any) -> Dispatcher:
        cfg = MessagingConfig(lease_s=30, backoff_base_s=60, max_attempts=3, **config)
        return Dispatcher(
            config=cfg, channels={}, providers={"email": providers}, clock=lambda: NOW
        )

    def queue(self, n: int) -> list[int]:
        rows = self.conn.execute(
            "INSERT INTO crm_message_outbox (profile_id, channel, address, template, purpose)"
            " SELECT id, 'email', 'c' || id || '@example.com', 'receipt', 'transactional'"
            " FROM crm_profiles ORDER BY id LIMIT %s RETURNING id",
            (n,),
        ).fetchall()
        self.conn.commit()
        return sorted(r[0] for r in rows)

    def rows(self) -> dict[int, dict[str, Any]]:
        with self.conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            got = cur.execute("SELECT * FROM crm_message_outbox ORDER BY id").fetchall()
        self.conn.commit()
        return {r["id"]: r for r in got}

    def reasons(self, mid: int) -> list[tuple[str, str]]:
        out = [(d["decision"], d["reason"]) for d in repo.decisions(self.conn, mid)]
        self.conn.commit()
        return out


@pytest.fixture
def world(fresh_database: Callable[..., str]) -> Iterator[World]:
    url = fresh_database()
    primary, c1 = start_sink(None, tls=False)
    secondary, c2 = start_sink(None, tls=False)
    try:
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO crm_profiles (identified, attributes)"
                " SELECT true, '{}'::jsonb FROM generate_series(1, 10)"
            )
            repo.upsert_template(
                conn, name="receipt", channel="email", locale="en", format="text",
                subject="Receipt", body="Thanks.",
            )  # fmt: skip
            conn.commit()
            world = World(url, conn, primary, secondary)
            yield world
            for channel in world.opened:
                channel.close()
    finally:
        c1.stop()
        c2.stop()


def _metric(outcome: str) -> float:
    value = REGISTRY.get_sample_value("mallpulse_messaging_dispatched_total", {"outcome": outcome})
    return value or 0.0


def test_a_transient_refusal_fails_over_to_the_second_provider(world: World) -> None:
    world.primary.on_data = lambda _m: "451 4.3.0 try later"
    [mid] = world.queue(1)
    route = [
        Provider("relay-a", world.smtp(world.primary)),
        Provider("relay-b", world.smtp(world.secondary)),
    ]
    before = _metric("failed_over")
    counts = world.dispatcher(route).run(world.conn)
    assert (counts.sent, counts.failed_over) == (1, 1)
    assert _metric("failed_over") == before + 1
    row = world.rows()[mid]
    assert row["status"] == "sent" and row["provider"] == "relay-b"
    assert len(world.secondary.received()) == 1 and len(world.primary.received()) == 1
    decision, reason = world.reasons(mid)[-1]
    assert decision == "sent" and "relay-b" in reason and "relay-a: SMTP 451" in reason


def test_an_open_circuit_skips_the_primary_until_it_cools_down(world: World) -> None:
    world.primary.on_data = lambda _m: "421 4.7.0 overloaded"
    ids = world.queue(5)
    circuit = Circuit(threshold=2, cooldown_s=60)
    route = [
        Provider("relay-a", world.smtp(world.primary), circuit=circuit),
        Provider("relay-b", world.smtp(world.secondary)),
    ]
    counts = world.dispatcher(route).run(world.conn)
    assert counts.sent == 5 and len(world.primary.received()) == 2  # then the circuit opened
    assert len(world.secondary.received()) == 5 and circuit.is_open(NOW)
    assert "relay-a: circuit open" in world.reasons(ids[-1])[-1][1]
    assert not circuit.is_open(NOW + timedelta(seconds=61))  # one trial after the cooldown


def test_an_unknown_outcome_is_not_sent_again_anywhere(world: World) -> None:
    port, stop = _dropping_smtp_server()
    try:
        [mid] = world.queue(1)
        route = [
            Provider("relay-a", world.smtp(port)),
            Provider("relay-b", world.smtp(world.secondary)),
        ]
        counts = world.dispatcher(route).run(world.conn)
    finally:
        stop()
    assert counts.uncertain == 1 and world.secondary.received() == []
    row = world.rows()[mid]
    assert row["status"] == "uncertain" and row["lease_token"] is None
    assert "outcome unknown" in world.reasons(mid)[-1][1]


def test_every_provider_down_is_a_retry_with_backoff(world: World) -> None:
    world.primary.on_data = lambda _m: "451 4.3.0 try later"
    world.secondary.on_data = lambda _m: "452 4.3.1 full"
    [mid] = world.queue(1)
    route = [
        Provider("relay-a", world.smtp(world.primary)),
        Provider("relay-b", world.smtp(world.secondary)),
    ]
    dispatcher = world.dispatcher(route)
    dispatcher.jitter = lambda: 0.5
    counts = dispatcher.run(world.conn)
    assert counts.retried == 1
    row = world.rows()[mid]
    # 452 is a rate limit: at least its 60 s; full jitter of the 60 s step gives 30 s
    assert row["status"] == "queued" and row["not_before"] == NOW + timedelta(seconds=60)
    assert row["attempts"] == 1 and row["lease_token"] is None
    decision, reason = world.reasons(mid)[-1]
    assert decision == "retry" and "relay-a: SMTP 451" in reason and "relay-b: SMTP 452" in reason


def test_the_token_bucket_is_shared_by_every_worker(world: World) -> None:
    ids = world.queue(5)

    # 1 token per 1000 s: no refill during the test, so the burst is all there is
    def route() -> list[Provider]:
        return [Provider("relay-a", world.smtp(world.primary), rate_per_s=0.001, burst=2)]

    first = world.dispatcher(route()).run(world.conn)
    assert (first.sent, first.deferred) == (2, 3)
    rows = world.rows()
    waits = [(rows[i]["not_before"] - NOW).total_seconds() for i in ids[2:]]
    # spread over the refill time (1/rate = 1000 s a token), not all retried in a second
    assert [1000 <= w < 2000 for w in waits[:1]] == [True] and waits == sorted(waits)
    later = world.dispatcher(route())
    later.clock = lambda: NOW + timedelta(hours=2)  # past the deferrals; the bucket is empty
    second = later.run(world.conn)
    assert (second.sent, second.deferred) == (0, 3)
    rows = world.rows()
    assert [rows[i]["status"] for i in ids].count("queued") == 3
    assert "relay-a: rate limit 0.001/s reached" in world.reasons(ids[-1])[-1][1]
    assert len(world.primary.received()) == 2


@pytest.mark.parametrize(
    ("burst", "wants", "granted"),
    [(3, [1, 1, 1, 1], [1, 1, 1, 0]), (5, [10], [5]), (4, [3, 3], [3, 1]), (1, [0, 2], [0, 1])],
)
def test_take_tokens_never_grants_more_than_the_bucket_holds(
    world: World, burst: int, wants: list[int], granted: list[int]
) -> None:
    got = [repo.take_tokens(world.conn, "p", w, 0.0001, burst) for w in wants]
    world.conn.commit()
    assert got == granted


@pytest.mark.parametrize(
    ("attempts", "jitter", "expected"),
    [
        (1, 1.0, 30.0),
        (2, 1.0, 60.0),
        (3, 0.5, 50.0),
        (1, 0.0, 0.0),
        (10, 1.0, 100.0),
        (30, 0.25, 25.0),
    ],
)
def test_backoff_is_exponential_with_full_jitter_and_capped(
    attempts: int, jitter: float, expected: float
) -> None:
    config = MessagingConfig(backoff_base_s=30, backoff_max_s=100)
    dispatcher = Dispatcher(config=config, channels={}, jitter=lambda: jitter)
    assert dispatcher.backoff(attempts) == expected


def _caused(exc: ChannelError, cause: BaseException) -> ChannelError:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "unknown"),
    [
        (_caused(TransientChannelError("x"), smtplib.SMTPServerDisconnected("gone")), True),
        (_caused(TransientChannelError("x"), TimeoutError("read")), True),
        (_caused(TransientChannelError("x"), ConnectionResetError()), True),
        (_caused(TransientChannelError("x"), ConnectionRefusedError()), False),
        (_caused(TransientChannelError("x"), smtplib.SMTPResponseException(451, "later")), False),
        (RateLimitedError("slow down", retry_after_s=5), False),
        (PermanentChannelError("no"), False),
        (_caused(TransientChannelError("x"), httpx.ReadTimeout("t")), True),
        (_caused(TransientChannelError("x"), httpx.ConnectError("c")), False),
        (TransientChannelError("a 503 answer"), False),
    ],
)
def test_outcome_unknown_table(exc: ChannelError, unknown: bool) -> None:
    assert outcome_unknown(exc) is unknown


def test_a_channel_in_both_channels_and_routes_is_refused() -> None:
    smtp = {"type": "smtp", "host": "h", "from_address": "a@b.c"}
    route = {"providers": [{"name": "a", "config": smtp}, {"name": "a", "config": smtp}]}
    with pytest.raises(ValidationError, match="unique"):
        MessagingConfig.model_validate({"routes": {"email": route}})
    with pytest.raises(ValidationError, match="both"):
        MessagingConfig.model_validate(
            {
                "channels": {"email": smtp},
                "routes": {"email": {"providers": [route["providers"][0]]}},
            }
        )
    ok = RouteConfig.model_validate({"providers": [{"name": "a", "config": smtp, "rate_per_s": 5}]})
    assert ok.providers[0].config.type == "smtp"


def _dropping_smtp_server() -> tuple[int, Callable[[], None]]:
    """An SMTP server that takes the whole message and hangs up without answering."""
    port = free_port()
    server = socket.create_server(("127.0.0.1", port))

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 drop ESMTP\r\n")
            for line in lines:
                if line.upper().startswith((b"EHLO", b"HELO")):
                    conn.sendall(b"250 drop\r\n")
                elif line.upper().startswith(b"DATA"):
                    conn.sendall(b"354 go on\r\n")
                    for body in lines:
                        if body == b".\r\n":
                            return  # the message is here; the answer never comes
                else:
                    conn.sendall(b"250 OK\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def stop() -> None:
        server.close()
        thread.join(timeout=10)

    return port, stop
