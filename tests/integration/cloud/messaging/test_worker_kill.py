"""A real Celery worker SIGKILLed mid-batch: what the provider accepted and was recorded is never
sent again, the message whose outcome died with the worker is marked `uncertain` (not resent:
SMTP cannot drop a duplicate), and the rest of the batch, marked `sending` but never handed over,
is queued again and sent by the next worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import psycopg
import pytest
from celery import Celery

from cloud.crm.identity.service import ingest_record
from cloud.crm.messaging import repository as repo
from cloud.crm.messaging import service
from cloud.crm.messaging.channels.email import SmtpConfig
from tests.support.smtp import Received, SmtpSink

REPO = Path(__file__).resolve().parents[4]
BROKER = "redis://127.0.0.1:6379/1"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _worker(queue: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLPULSE_")}
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cloud.workers.app", "worker",
            "--pool=solo", "-Q", queue, "-n", f"{queue}@%h", "--without-heartbeat",
            "--without-gossip", "--without-mingle", "--loglevel=WARNING",
        ],
        cwd=REPO,
        env={**clean, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def world(
    fresh_database: Callable[..., str], smtp_config: SmtpConfig, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str], str]]:
    """(database url, the worker's environment, its private queue)."""
    url = fresh_database()
    raw = smtp_config.model_dump(mode="json")
    assert smtp_config.password and smtp_config.unsubscribe_secret
    raw["password"] = smtp_config.password.get_secret_value()
    raw["unsubscribe_secret"] = smtp_config.unsubscribe_secret.get_secret_value()
    config = tmp_path / "messaging.json"
    config.write_text(json.dumps({"channels": {"email": raw}, "lease_s": 2, "batch_size": 10}))
    env = {
        "MALLPULSE_DATABASE_URL": url,
        "MALLPULSE_CELERY_BROKER_URL": BROKER,
        "MALLPULSE_MESSAGING_CONFIG_FILE": str(config),
    }
    queue = f"mp-test-msg-{uuid.uuid4().hex[:10]}"
    yield url, env, queue
    import redis

    redis.Redis.from_url(BROKER).delete(queue)


def _ids(sink: SmtpSink) -> Counter[str]:
    return Counter(
        str(message_from_bytes(m.content, policy=policy.default)["Message-ID"])
        for m in sink.received()
    )


def _state(url: str) -> dict[int, tuple[str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, status, provider_id FROM crm_message_outbox").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_a_sigkilled_worker_never_causes_a_second_send(
    world: tuple[str, dict[str, str], str], smtp_sink: SmtpSink
) -> None:
    url, env, queue = world
    with psycopg.connect(url) as conn:
        pid = ingest_record(conn, source="web", identifiers={"email": "k@example.com"}).profile_id
        repo.upsert_template(
            conn, name="receipt", channel="email", locale="en", format="text",
            subject="Receipt {{ n }}", body="Thanks, receipt {{ n }}.",
        )  # fmt: skip
        ids = [
            service.send(
                conn, profile_id=pid, channel="email", template="receipt", variables={"n": n},
                purpose="transactional", priority="normal", locale=None, idempotency_key=f"r{n}",
            )["id"]
            for n in range(3)
        ]  # fmt: skip
        conn.commit()
    app = Celery("test", broker=BROKER)
    first = _worker(queue, env)

    def kill_on_second(got: Received) -> None:
        if len(smtp_sink.received()) == 2:
            os.kill(first.pid, signal.SIGKILL)  # the server has the message; the worker is gone

    smtp_sink.on_data = kill_on_second  # type: ignore[assignment]
    try:
        app.send_task("messaging.dispatch", queue=queue)
        assert first.wait(timeout=120) == -signal.SIGKILL
        state = _state(url)
        assert (
            state[ids[0]][0] == "sent" and state[ids[0]][1] == f"<mp-{ids[0]}@mail.mallpulse.test>"
        )
        assert state[ids[1]] == ("sending", None)  # accepted by the server, never recorded
        # marked `sending` with the batch, after the message in flight: never handed over
        assert state[ids[2]] == ("sending", None)
        smtp_sink.on_data = None
        second = _worker(queue, env)
        try:
            deadline = time.monotonic() + 120
            while _state(url)[ids[2]][0] != "sent" and time.monotonic() < deadline:
                app.send_task("messaging.dispatch", queue=queue)  # as beat would
                time.sleep(1.0)
        finally:
            second.terminate()
            second.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    state = _state(url)
    assert [state[i][0] for i in ids] == ["sent", "uncertain", "sent"]
    assert _ids(smtp_sink) == Counter({f"<mp-{i}@mail.mallpulse.test>": 1 for i in ids})
    with psycopg.connect(url) as conn:
        reasons = [d["reason"] for d in repo.decisions(conn, ids[1])]
    assert any("not resent" in r for r in reasons), reasons
    with psycopg.connect(url) as conn:
        reasons = [d["reason"] for d in repo.decisions(conn, ids[2])]
    assert any("worker lost before handing this message over" in r for r in reasons), reasons
