"""E-mail throughput of one dispatcher process into a local SMTP sink, with the send-time policy
on, against bare smtplib on one connection into the same sink, in the same run.

The sink is aiosmtpd in a process of its own (plain SMTP, no TLS: it is local). The hub path is
the real one (Dispatcher.run_batch): claim a batch of 200 from the outbox (lease), read the
policy facts of the whole batch in one query (consent, suppression, recent sends for the caps,
zone) and decide, render the template (sandboxed Jinja2, compiled once), one durable commit of
the decisions and the `sending` marks with the send order, then per message: build the MIME
message (the SMTP adapter), send over one reused SMTP connection, commit `sent` with the
provider id in one statement before the next message goes; a flush at the end of the batch.
Each message goes to its own customer (marketing consent granted), so the caps never bite;
quiet hours are evaluated with an empty window so that none is deferred. The baseline sends a
prebuilt message of the same size with `smtplib.SMTP.sendmail` in a loop (no MIME build, no
database). The load average is printed with the figures: the machine is shared.

    python bench/bench_email.py [--messages 5000] [--dkim]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import time as dtime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from cloud.crm.messaging import repository as repo  # noqa: E402
from cloud.crm.messaging.channels.base import OutboundMessage  # noqa: E402
from cloud.crm.messaging.channels.email import DkimConfig, SmtpConfig, SmtpEmailChannel  # noqa: E402
from cloud.crm.messaging.config import MessagingConfig  # noqa: E402
from cloud.crm.messaging.dispatch import Dispatcher  # noqa: E402
from cloud.crm.messaging.policy import PolicyConfig  # noqa: E402
from cloud.db.migrate import migrate  # noqa: E402

SINK = (
    "import sys\n"
    "from tests.support.smtp import start_sink\n"
    "sink, controller = start_sink(None, tls=False)\n"
    "print(sink.port, flush=True)\n"
    "sys.stdin.read()\n"
    "print(len(sink.received()), flush=True)\n"
    "controller.stop()\n"
)
SUBJECT = "Spring sale, {{ profile.first_name }}"
BODY = "Hello {{ profile.first_name }},\nthe spring sale starts today: 20% off everything.\n"


def _seed(url: str, n: int) -> None:
    """n customers with marketing e-mail consent, a template, and one queued message each."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO crm_profiles (identified, attributes)"
            ' SELECT true, \'{"first_name": "Ann"}\'::jsonb FROM generate_series(1, %s)',
            (n,),
        )
        conn.execute(
            "INSERT INTO crm_consents (profile_id, channel, purpose, status, source, updated_at)"
            " SELECT id, 'email', 'marketing', 'granted', 'bench', now() FROM crm_profiles"
        )
        repo.upsert_template(
            conn, name="bench", channel="email", locale="en", format="text", subject=SUBJECT,
            body=BODY,
        )  # fmt: skip
        conn.execute(
            "INSERT INTO crm_message_outbox (profile_id, channel, address, template, purpose)"
            " SELECT id, 'email', 'c' || id || '@example.com', 'bench', 'marketing'"
            " FROM crm_profiles ORDER BY id"
        )


def bare(port: int, n: int) -> float:
    """Messages per second with bare smtplib on one connection."""
    channel = SmtpEmailChannel(
        SmtpConfig(host="127.0.0.1", port=port, starttls=False, from_address="news@bench.example")
    )
    raw = channel.build(
        OutboundMessage(
            message_id=1, address="c1@example.com", subject="Spring sale, Ann",
            body=BODY.replace("{{ profile.first_name }}", "Ann"), profile_id=1,
        )
    )  # fmt: skip
    smtp = smtplib.SMTP("127.0.0.1", port)
    start = time.perf_counter()
    for i in range(n):
        smtp.sendmail("news@bench.example", [f"c{i}@example.com"], raw)
    secs = time.perf_counter() - start
    smtp.quit()
    return n / secs


def hub(url: str, port: int, n: int, dkim: DkimConfig | None) -> float:
    """Messages per second through the dispatcher with the policy on."""
    _seed(url, n)
    smtp = SmtpConfig(
        host="127.0.0.1", port=port, starttls=False, from_address="news@bench.example", dkim=dkim
    )
    config = MessagingConfig(
        channels={"email": smtp},
        batch_size=200,
        policy=PolicyConfig(quiet_start=dtime(0, 0), quiet_end=dtime(0, 0)),
    )
    channel = SmtpEmailChannel(smtp)
    dispatcher = Dispatcher(config=config, channels={"email": channel})
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        counts = dispatcher.run(conn, max_batches=n)
        secs = time.perf_counter() - start
        left = conn.execute("SELECT count(*) FROM crm_message_outbox WHERE status <> 'sent'")
        row = left.fetchone()
    channel.close()
    if counts.sent != n or (row and row[0]):
        raise SystemExit(f"not every message was sent: {counts}")
    return n / secs


def main(argv: list[str] | None = None) -> None:
    """Start the sink, run the baseline and the hub on fresh databases, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="Messages per case.")
    parser.add_argument("--dkim", action="store_true", help="Also measure with DKIM signing.")
    args = parser.parse_args(argv)
    admin = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert sink.stdout is not None and sink.stdin is not None
    port = int(sink.stdout.readline())
    names: list[str] = []
    try:
        cases: list[tuple[str, DkimConfig | None]] = [("hub, policy on", None)]
        if args.dkim:
            from tests.support.smtp import make_dkim_key

            key, _ = make_dkim_key(Path(tempfile.mkdtemp()))
            dkim = DkimConfig(domain="bench.example", selector="b1", private_key_file=str(key))
            cases.append(("hub, policy on, DKIM", dkim))
        print(f"load average: {os.getloadavg()}", flush=True)
        base = bare(port, args.messages)
        print(f"{args.messages} messages per case, one process, one SMTP connection")
        print(f"baseline bare smtplib:       {base:8.0f} msg/s", flush=True)
        for label, dkim_cfg in cases:
            name = f"mp_bench_email_{uuid.uuid4().hex[:8]}"
            names.append(name)
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f'CREATE DATABASE "{name}"')
            url = admin.rpartition("/")[0] + "/" + name
            migrate(url)
            rate = hub(url, port, args.messages, dkim_cfg)
            print(f"{label + ':':28} {rate:8.0f} msg/s  ratio {rate / base:.3f}", flush=True)
        again = bare(port, args.messages)  # the load moves: the baseline again, after
        print(f"baseline again, after:       {again:8.0f} msg/s", flush=True)
        print(f"load average: {os.getloadavg()}", flush=True)
    finally:
        sink.stdin.close()
        print(f"sink received {sink.stdout.readline().strip()} messages")
        sink.wait(timeout=60)
        with psycopg.connect(admin, autocommit=True) as c:
            for name in names:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
