"""Workers SIGKILLed mid-batch.

A real Celery worker SIGKILLed mid-batch: what the provider accepted and was recorded is never
sent again, the message whose outcome died with the worker is marked `uncertain` (not resent:
SMTP cannot drop a duplicate), and the rest of the batch, marked `sending` but never handed over,
is queued again and sent by the next worker."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from tests.support.smtp import Received, SmtpSink, start_sink

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

    smtp_sink.on_data = kill_on_second
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


WORKER = (
    "import time\n"
    "from cloud.core.settings import settings_from_env\n"
    "from cloud.crm.messaging.tasks import run_dispatch\n"
    "settings = settings_from_env()\n"
    "while True:\n"
    "    out = run_dispatch(settings)\n"
    "    if not any(out.values()):\n"
    "        time.sleep(0.05)\n"
)
_MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE | re.IGNORECASE)


@dataclass
class KillReport:
    """What a campaign worked by workers killed at random came to."""

    messages: int
    kills: int
    sent: int
    uncertain_received: int
    uncertain_not_received: int
    duplicates: int
    lost: int
    phantom: int
    seconds: float


class KillRun:
    """n queued e-mails worked by `workers` looping dispatcher processes, `kills` of them
    SIGKILLed at random progress points (half while the SMTP server holds a message the worker
    has not seen accepted, half from outside at whatever the worker was doing) and replaced."""

    def __init__(self, url: str, n: int, workers: int, kills: int, folder: Path, seed: int) -> None:
        self.url, self.n, self.workers, self.kills = url, n, workers, kills
        self.rng = random.Random(seed)
        self.sink, self.controller = start_sink(None, tls=False)
        config = folder / "messaging.json"
        smtp = {"type": "smtp", "host": "127.0.0.1", "port": self.sink.port, "starttls": False,
                "from_address": "news@kill.mallpulse.test"}  # fmt: skip
        config.write_text(
            json.dumps({"channels": {"email": smtp}, "lease_s": 2, "batch_size": 100})
        )
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLPULSE_")}
        self.env = {**clean, "MALLPULSE_DATABASE_URL": url,
                    "MALLPULSE_MESSAGING_CONFIG_FILE": str(config)}  # fmt: skip
        marks = sorted(self.rng.sample(range(n // 10, n * 9 // 10), kills))
        self.inside = {m for i, m in enumerate(marks) if i % 2 == 0}  # killed from the sink
        self.outside = [m for i, m in enumerate(marks) if i % 2 == 1]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.done_kills = 0
        self.lock = threading.Lock()

    def seed(self) -> None:
        """n customers, a template, one queued transactional e-mail each."""
        with psycopg.connect(self.url) as conn:
            conn.execute(
                "INSERT INTO crm_profiles (identified, attributes)"
                " SELECT true, '{}'::jsonb FROM generate_series(1, %s)",
                (self.n,),
            )
            repo.upsert_template(
                conn, name="receipt", channel="email", locale="en", format="text",
                subject="Receipt {{ message.id }}", body="Thanks for your purchase.",
            )  # fmt: skip
            conn.execute(
                "INSERT INTO crm_message_outbox (profile_id, channel, address, template, purpose)"
                " SELECT id, 'email', 'c' || id || '@example.com', 'receipt', 'transactional'"
                " FROM crm_profiles ORDER BY id"
            )

    def _spawn(self) -> None:
        self.procs.append(
            subprocess.Popen([sys.executable, "-c", WORKER], cwd=REPO, env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )  # fmt: skip

    def _kill_one(self) -> None:
        with self.lock:
            alive = [p for p in self.procs if p.poll() is None]
            if not alive:
                return
            victim = self.rng.choice(alive)
            os.kill(victim.pid, signal.SIGKILL)
            self.done_kills += 1

    def _on_data(self, _got: Received) -> str | None:
        # the server's one thread appends then calls this: the count is this message's number
        if len(self.sink.messages) in self.inside:
            self._kill_one()
        return None

    def _left(self) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM crm_message_outbox"
                " WHERE status IN ('queued', 'claimed', 'sending')"
            ).fetchone()
        return int(row[0]) if row else 0

    def run(self, *, limit_s: float) -> KillReport:
        """Work the campaign to the end (or limit_s, then fail) and check every message."""
        self.sink.on_data = self._on_data
        start = time.monotonic()
        try:
            for _ in range(self.workers):
                self._spawn()
            while self._left() > 0:
                assert time.monotonic() - start < limit_s, f"not done in {limit_s} s"
                if self.outside and len(self.sink.received()) >= self.outside[0]:
                    self.outside.pop(0)
                    self._kill_one()
                with self.lock:  # replace the dead
                    for dead in [p for p in self.procs if p.poll() is not None]:
                        self.procs.remove(dead)
                        self._spawn()
                time.sleep(0.1)
            return self._report(time.monotonic() - start)
        finally:
            for proc in self.procs:
                proc.kill()
                proc.wait(timeout=30)
            self.controller.stop()

    def _report(self, seconds: float) -> KillReport:
        got = Counter(
            m.group(1).decode()
            for r in self.sink.received()
            if (m := _MESSAGE_ID.search(r.content)) is not None
        )
        with psycopg.connect(self.url) as conn:
            rows = conn.execute("SELECT id, status FROM crm_message_outbox").fetchall()
        ids = {mid: f"<mp-{mid}@kill.mallpulse.test>" for mid, _ in rows}
        status: dict[int, str] = dict(rows)
        unc = [m for m, s in status.items() if s == "uncertain"]
        return KillReport(
            messages=len(rows),
            kills=self.done_kills,
            sent=sum(s == "sent" for s in status.values()),
            uncertain_received=sum(got[ids[m]] > 0 for m in unc),
            uncertain_not_received=sum(got[ids[m]] == 0 for m in unc),
            duplicates=sum(c - 1 for c in got.values() if c > 1),
            lost=sum(s not in ("sent", "uncertain") for s in status.values()),
            phantom=sum(got[ids[m]] == 0 for m, s in status.items() if s == "sent"),
            seconds=seconds,
        )


def test_a_campaign_worked_by_workers_killed_at_random_has_no_duplicate_and_no_loss(
    fresh_database: Callable[..., str], tmp_path: Path
) -> None:
    run = KillRun(fresh_database(), n=2000, workers=3, kills=6, folder=tmp_path, seed=14)
    run.seed()
    report = run.run(limit_s=300)
    print(report)
    assert report.kills == 6, report
    assert (report.duplicates, report.lost, report.phantom) == (0, 0, 0), report
    assert report.sent + report.uncertain_received + report.uncertain_not_received == 2000
    # only a message in flight when its worker died is in doubt: at most one per kill
    assert report.uncertain_received + report.uncertain_not_received <= report.kills, report
