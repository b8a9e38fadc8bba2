"""A campaign worked by dispatcher processes killed at random: zero duplicates, zero lost.

n queued e-mails (default 100,000) are worked by `--workers` processes that loop the dispatch
task's function (`cloud.crm.messaging.tasks.run_dispatch`) into a local SMTP server (aiosmtpd)
that records every Message-ID it receives; `--kills` times a random worker is SIGKILLed (half of
them while the server holds a message whose 250 the sending worker has not seen yet, half at a
random point of whatever a worker is doing) and replaced. At the end every message must be
`sent` (received exactly once) or `uncertain` (in flight when its worker died: flagged for
review, never resent); a Message-ID received twice is a duplicate, a message in neither state
is lost. The same harness runs with 2,000 messages in CI (tests/.../test_worker_kill.py).
Baseline: the same campaign with the same workers and no kill, in the same run.

    python bench/bench_dispatch_kill.py [--messages 100000] [--workers 3] [--kills 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from cloud.db.migrate import migrate  # noqa: E402
from tests.integration.cloud.messaging.test_worker_kill import KillReport, KillRun  # noqa: E402


def one(admin: str, n: int, workers: int, kills: int, seed: int) -> KillReport:
    """One campaign on a fresh database."""
    name = f"mp_bench_kill_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.rpartition("/")[0] + "/" + name
    try:
        migrate(url)
        run = KillRun(url, n, workers, kills, Path(tempfile.mkdtemp()), seed)
        run.seed()
        return run.run(limit_s=3600)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    """Run the baseline (no kill) and the killed run; print both."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--no-baseline", action="store_true", help="Only the run with kills.")
    args = parser.parse_args(argv)
    admin = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    print(f"load average before: {os.getloadavg()}", flush=True)
    for kills in (args.kills,) if args.no_baseline else (0, args.kills):
        r = one(admin, args.messages, args.workers, kills, args.seed)
        print(
            f"kills {r.kills:3}: {r.messages} messages in {r.seconds:.1f} s"
            f" ({r.messages / r.seconds:.0f} msg/s, {args.workers} workers); sent {r.sent},"
            f" uncertain {r.uncertain_received} received + {r.uncertain_not_received} not"
            f" received; duplicates {r.duplicates}, lost {r.lost}, sent-but-not-received"
            f" {r.phantom}",
            flush=True,
        )
        print(f"load average after: {os.getloadavg()}", flush=True)
        ok = r.duplicates == r.lost == r.phantom == 0 and r.kills == kills
        if not ok:
            raise SystemExit("FAILED: duplicates, losses or a kill that did not happen")


if __name__ == "__main__":
    main()
