"""Queueing a campaign to a 1 M-member segment, against a bare INSERT ... SELECT of the same rows.

The database holds n customers (default 1,000,000), each with one record and one e-mail
identifier, all members of one static segment. The hub path is the real one
(`cloud.crm.messaging.campaigns.queue`, as POST /v1/messaging/campaigns calls it): the campaign
row with its idempotency key, the audience resolved over merged profiles, the newest unblocked
address per customer, one INSERT ... SELECT into the outbox with every index of the table, and
the commit. The baseline inserts the same (customer, address) rows, precomputed into a table,
into the same outbox with a bare INSERT ... SELECT and commits, in the same run.

    python bench/bench_campaign.py [--customers 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from cloud.crm.messaging import campaigns  # noqa: E402
from cloud.crm.messaging import repository as repo  # noqa: E402
from cloud.db.migrate import migrate  # noqa: E402


def _seed(url: str, n: int) -> int:
    """n customers with an e-mail each, all in one static segment; the segment's id."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO crm_profiles (identified, attributes)"
            " SELECT true, '{}'::jsonb FROM generate_series(1, %s)",
            (n,),
        )
        conn.execute(
            "INSERT INTO crm_records (profile_id, source) SELECT id, 'bench' FROM crm_profiles"
        )
        conn.execute(
            "INSERT INTO crm_identifiers (record_id, kind, value, raw_value)"
            " SELECT id, 'email', 'c' || profile_id || '@example.com', 'c' FROM crm_records"
        )
        seg = conn.execute(
            "INSERT INTO crm_segments (name, kind, created_by) VALUES ('bench', 'static', 'b')"
            " RETURNING id"
        ).fetchone()
        assert seg is not None
        conn.execute(
            "INSERT INTO crm_segment_members (segment_id, profile_id, entered_at)"
            " SELECT %s, id, now() FROM crm_profiles",
            (seg[0],),
        )
        repo.upsert_template(
            conn, name="bench", channel="email", locale="en", format="text", subject="Hi",
            body="Spring sale.",
        )  # fmt: skip
        conn.execute(
            "CREATE TABLE bench_rows AS SELECT r.profile_id AS pid, i.value AS address"
            " FROM crm_records r JOIN crm_identifiers i ON i.record_id = r.id"
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return int(seg[0])


def baseline(url: str) -> tuple[int, float]:
    """Bare INSERT ... SELECT of the precomputed rows into the outbox, committed."""
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        cur = conn.execute(
            "INSERT INTO crm_message_outbox (profile_id, channel, address, template, payload,"
            " purpose, priority)"
            " SELECT pid, 'email', address, 'bench', '{}'::jsonb, 'marketing', 'normal'"
            " FROM bench_rows"
        )
        conn.commit()
        secs = time.perf_counter() - start
        rows = cur.rowcount
        conn.execute("TRUNCATE crm_message_outbox CASCADE")
        conn.commit()
    return rows, secs


def hub(url: str, segment: int) -> tuple[int, float]:
    """The campaign service, committed."""
    body = campaigns.CampaignCreate(
        name="Spring", channel="email", template="bench",
        audience=campaigns.SegmentAudience(segment_id=segment),
    )  # fmt: skip
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        out = campaigns.queue(conn, body, idempotency_key="bench-1", actor="bench")
        conn.commit()
        secs = time.perf_counter() - start
    return out.queued, secs


def main(argv: list[str] | None = None) -> None:
    """Seed a fresh database, run the baseline then the hub, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="Segment size.")
    args = parser.parse_args(argv)
    admin = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"mp_bench_campaign_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.rpartition("/")[0] + "/" + name
    try:
        migrate(url)
        t = time.perf_counter()
        segment = _seed(url, args.customers)
        print(f"seeded {args.customers} customers in {time.perf_counter() - t:.1f} s", flush=True)
        print(f"load average: {os.getloadavg()}", flush=True)
        rows, base = baseline(url)
        print(f"baseline bare INSERT ... SELECT: {rows} rows in {base:6.2f} s", flush=True)
        queued, secs = hub(url, segment)
        print(
            f"campaign queued (service):      {queued} rows in {secs:6.2f} s"
            f"  ratio {base / secs:.2f} of the baseline's speed"
            f"  ({'under' if secs < 60 else 'OVER'} 60 s)",
            flush=True,
        )
        print(f"load average: {os.getloadavg()}", flush=True)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
