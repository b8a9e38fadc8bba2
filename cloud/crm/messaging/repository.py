"""The messaging hub's SQL: the outbox (claims and leases), decisions, suppressions, the facts
the policy reads, templates and the in-app inbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

_MESSAGE_COLUMNS = (
    "id, profile_id, channel, address, template, payload, secret, purpose, priority, locale,"
    " status, attempts, not_before, provider_id, last_error, idempotency_key, created_at, sent_at"
)


def enqueue(conn: Conn, **values: Any) -> tuple[int, bool]:
    """Insert a message; (id, created). An idempotency key already used returns its message."""
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    params = [Jsonb(v) if k == "payload" else v for k, v in values.items()]
    row = conn.execute(
        f"INSERT INTO crm_message_outbox ({cols}) VALUES ({marks})"
        " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id",
        params,
    ).fetchone()
    if row is not None:
        return int(row[0]), True
    found = conn.execute(
        "SELECT id FROM crm_message_outbox WHERE idempotency_key = %s", (values["idempotency_key"],)
    ).fetchone()
    assert found is not None
    return int(found[0]), False


def get_message(conn: Conn, message_id: int) -> Row | None:
    """One message with its current state."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM crm_message_outbox WHERE id = %s", (message_id,)
        ).fetchone()


def claim_due(conn: Conn, *, token: UUID, now: datetime, lease: timedelta, limit: int) -> list[Row]:
    """Lease up to `limit` due messages (high priority first) to the caller's token."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "UPDATE crm_message_outbox o SET status = 'claimed', lease_token = %(token)s,"
            " lease_until = %(until)s FROM (SELECT id FROM crm_message_outbox"
            "  WHERE status = 'queued' AND (not_before IS NULL OR not_before <= %(now)s)"
            "  ORDER BY CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END, id"
            "  LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due WHERE o.id = due.id"
            f" RETURNING {', '.join('o.' + c.strip() for c in _MESSAGE_COLUMNS.split(','))}",
            {"token": token, "until": now + lease, "now": now, "limit": limit},
        ).fetchall()


def requeue_unstarted(conn: Conn, now: datetime) -> int:
    """Claims whose lease ran out before their send began: back to the queue (never sent)."""
    cur = conn.execute(
        "UPDATE crm_message_outbox SET status = 'queued', lease_token = NULL, lease_until = NULL"
        " WHERE status = 'claimed' AND lease_until < %s",
        (now,),
    )
    return cur.rowcount


def expired_sends(conn: Conn, now: datetime) -> list[Row]:
    """Sends that began but whose worker vanished before recording the outcome (locked)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, channel FROM crm_message_outbox WHERE status = 'sending'"
            " AND lease_until < %s FOR UPDATE SKIP LOCKED",
            (now,),
        ).fetchall()


def transition(
    conn: Conn, message_id: int, token: UUID | None, *, status: str, **values: Any
) -> bool:
    """Move a message to `status` (setting `values`) if the caller still holds its lease."""
    sets = ", ".join([f"{k} = %({k})s" for k in values] + ["status = %(status)s"])
    where = "id = %(id)s" + (" AND lease_token = %(token)s" if token is not None else "")
    cur = conn.execute(
        f"UPDATE crm_message_outbox SET {sets} WHERE {where}",
        {**values, "status": status, "id": message_id, "token": token},
    )
    return cur.rowcount == 1


def record_decision(conn: Conn, message_id: int, decision: str, reason: str, at: datetime) -> None:
    """Append a decision and its reason."""
    conn.execute(
        "INSERT INTO crm_msg_decisions (message_id, decision, reason, decided_at)"
        " VALUES (%s, %s, %s, %s)",
        (message_id, decision, reason, at),
    )


def decisions(conn: Conn, message_id: int) -> list[Row]:
    """A message's decisions, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT decision, reason, decided_at FROM crm_msg_decisions WHERE message_id = %s"
            " ORDER BY id",
            (message_id,),
        ).fetchall()


def policy_facts(conn: Conn, profile_id: int, channel: str, since: datetime) -> Row:
    """Consent, suppression, recent sends and time zone of a person (over merged profiles)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "WITH live AS MATERIALIZED (SELECT crm_resolve_profile(%(pid)s) AS id),"
            " p AS (SELECT id FROM live UNION SELECT c.id FROM crm_profiles c"
            "   WHERE c.merged_into = (SELECT id FROM live))"
            " SELECT"
            " (SELECT status FROM crm_consents WHERE profile_id IN (SELECT id FROM p)"
            "   AND channel = %(ch)s AND purpose = 'marketing' ORDER BY updated_at DESC LIMIT 1)"
            "   AS consent,"
            " (SELECT reason FROM crm_msg_suppressions WHERE profile_id IN (SELECT id FROM p)"
            "   AND channel = %(ch)s ORDER BY (reason = 'hard_bounce') DESC LIMIT 1)"
            "   AS suppression,"
            " (SELECT coalesce(array_agg(ARRAY[channel, sent_at::text]), '{}')"
            "   FROM crm_message_outbox WHERE profile_id IN (SELECT id FROM p)"
            "   AND sent_at > %(since)s AND purpose = 'marketing') AS recent,"
            " (SELECT attributes FROM crm_profiles WHERE id = (SELECT id FROM live)) AS attributes",
            {"pid": profile_id, "ch": channel, "since": since},
        ).fetchone()
    assert row is not None
    return row


def policy_facts_batch(conn: Conn, rows: Sequence[Row], since: datetime) -> dict[int, Row]:
    """policy_facts for a whole batch in one round trip, by message id."""
    if not rows:
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            "WITH m AS (SELECT * FROM unnest(%(ids)s::bigint[], %(pids)s::bigint[],"
            "   %(chs)s::text[]) AS m(id, pid, ch)),"
            # a scalar subquery per row: the STABLE function runs once per message
            " l AS MATERIALIZED (SELECT m.id, m.ch, (SELECT crm_resolve_profile(m.pid)) AS live"
            "   FROM m),"
            " p AS (SELECT l.id, l.ch, l.live, ARRAY(SELECT l.live UNION SELECT c.id"
            "   FROM crm_profiles c WHERE c.merged_into = l.live) AS ids FROM l)"
            " SELECT p.id, p.live,"
            " (SELECT status FROM crm_consents WHERE profile_id = ANY(p.ids) AND channel = p.ch"
            "   AND purpose = 'marketing' ORDER BY updated_at DESC LIMIT 1) AS consent,"
            " (SELECT reason FROM crm_msg_suppressions WHERE profile_id = ANY(p.ids)"
            "   AND channel = p.ch ORDER BY (reason = 'hard_bounce') DESC LIMIT 1) AS suppression,"
            " (SELECT coalesce(array_agg(ARRAY[channel, sent_at::text]), '{}')"
            "   FROM crm_message_outbox WHERE profile_id = ANY(p.ids)"
            "   AND sent_at > %(since)s AND purpose = 'marketing') AS recent,"
            " (SELECT attributes FROM crm_profiles WHERE id = p.live) AS attributes"
            " FROM p",
            {
                "ids": [r["id"] for r in rows],
                "pids": [r["profile_id"] for r in rows],
                "chs": [r["channel"] for r in rows],
                "since": since,
            },
        ).fetchall()
    return {int(r["id"]): r for r in found}


@dataclass(frozen=True)
class Final:
    """A message leaving the batch without a send: skipped, failed, or queued again."""

    message_id: int
    status: str
    decision: str
    reason: str
    not_before: datetime | None = None


def mark_batch(
    conn: Conn,
    *,
    token: UUID,
    now: datetime,
    lease_until: datetime,
    finals: Sequence[Final],
    sends: Sequence[tuple[int, str]],
) -> set[int]:
    """One durable commit for a batch: the finals and their decisions, and each message to send
    in `sends` (id, reason) as `sending` with its place in the send order. The ids still leased
    to `token`, now `sending`."""
    decided = [(f.message_id, f.decision, f.reason) for f in finals] + [
        (mid, "send", reason) for mid, reason in sends
    ]
    with conn.pipeline(), conn.transaction():
        conn.execute("SET LOCAL synchronous_commit TO on")
        conn.execute(
            "INSERT INTO crm_msg_decisions (message_id, decision, reason, decided_at)"
            " SELECT d.id, d.decision, d.reason, %s FROM unnest(%s::bigint[], %s::text[],"
            " %s::text[]) AS d(id, decision, reason) JOIN crm_message_outbox o ON o.id = d.id"
            " AND o.lease_token = %s",
            (now, [d[0] for d in decided], [d[1] for d in decided], [d[2] for d in decided], token),
        )
        if finals:
            conn.execute(
                "UPDATE crm_message_outbox o SET status = f.status, lease_token = NULL,"
                " lease_until = NULL, not_before = coalesce(f.nb, o.not_before),"
                " last_error = CASE WHEN f.status = 'failed' THEN f.reason ELSE o.last_error END"
                " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[])"
                " AS f(id, status, reason, nb) WHERE o.id = f.id AND o.lease_token = %s",
                (
                    [f.message_id for f in finals], [f.status for f in finals],
                    [f.reason for f in finals], [f.not_before for f in finals], token,
                ),
            )  # fmt: skip
        cur = conn.execute(
            # the database's clock: recovery compares it with the server's start time
            "UPDATE crm_message_outbox o SET status = 'sending', attempts = o.attempts + 1,"
            " send_seq = s.seq, send_started_at = now(), lease_until = %s"
            " FROM unnest(%s::bigint[]) WITH ORDINALITY AS s(id, seq)"
            " WHERE o.id = s.id AND o.lease_token = %s RETURNING o.id",
            (lease_until, [mid for mid, _ in sends], token),
        )
    return {int(r[0]) for r in cur.fetchall()}


def record_outcome(
    conn: Conn, message_id: int, token: UUID, *, decision: str, reason: str, at: datetime,
    status: str, **values: Any,
) -> bool:  # fmt: skip
    """Set a sent message's outcome and record the decision, in one statement; False when the
    caller no longer holds the lease."""
    sets = ", ".join([f"{k} = %({k})s" for k in values] + ["status = %(status)s"])
    row = conn.execute(
        f"WITH u AS (UPDATE crm_message_outbox SET {sets}"
        " WHERE id = %(id)s AND lease_token = %(token)s RETURNING id)"
        " INSERT INTO crm_msg_decisions (message_id, decision, reason, decided_at)"
        " SELECT id, %(decision)s, %(reason)s, %(at)s FROM u RETURNING message_id",
        {
            **values, "status": status, "id": message_id, "token": token,
            "decision": decision, "reason": reason, "at": at,
        },
    ).fetchone()  # fmt: skip
    return row is not None


def release_unsent(
    conn: Conn, token: UUID, message_ids: Sequence[int], reason: str, at: datetime
) -> int:
    """Put `sending` messages never handed to a provider back in the queue (attempt undone)."""
    if not message_ids:
        return 0
    with conn.pipeline(), conn.transaction():
        conn.execute(
            "INSERT INTO crm_msg_decisions (message_id, decision, reason, decided_at)"
            " SELECT id, 'retry', %s, %s FROM crm_message_outbox"
            " WHERE id = ANY(%s) AND lease_token = %s",
            (reason, at, list(message_ids), token),
        )
        cur = conn.execute(
            "UPDATE crm_message_outbox SET status = 'queued', attempts = attempts - 1,"
            " lease_token = NULL, lease_until = NULL, send_seq = NULL, send_started_at = NULL"
            " WHERE id = ANY(%s) AND lease_token = %s",
            (list(message_ids), token),
        )
    return cur.rowcount


def flush(conn: Conn) -> None:
    """Make every earlier commit of this session durable (a commit with an xid waits for the
    WAL flush up to itself, which covers the asynchronous commits before it)."""
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit TO on")
        conn.execute("SELECT pg_current_xact_id()")


def lost_sends(conn: Conn, now: datetime) -> list[Row]:
    """Sends whose worker vanished (lease expired while `sending`), locked, in send order per
    lease; `doubtful` when the send order cannot be trusted (no order recorded, or the database
    restarted since, which may have lost asynchronously committed outcomes)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, channel, lease_token, send_seq,"
            " (send_seq IS NULL OR send_started_at IS NULL"
            "  OR send_started_at < pg_postmaster_start_time()) AS doubtful"
            " FROM crm_message_outbox WHERE status = 'sending' AND lease_until < %s"
            " ORDER BY lease_token, send_seq, id FOR UPDATE SKIP LOCKED",
            (now,),
        ).fetchall()


def take_tokens(conn: Conn, provider: str, want: int, rate_per_s: float, burst: int) -> int:
    """Take up to `want` tokens from the provider's bucket (shared by every worker); how many."""
    if want <= 0:
        return 0
    with conn.pipeline(), conn.transaction():
        conn.execute(
            "INSERT INTO crm_msg_rate_buckets (provider, tokens, refilled_at)"
            " VALUES (%s, %s, clock_timestamp()) ON CONFLICT (provider) DO NOTHING",
            (provider, float(burst)),
        )
        cur = conn.execute(
            "UPDATE crm_msg_rate_buckets b SET tokens = x.avail - x.granted, refilled_at = x.t"
            " FROM (SELECT provider, t, avail, least(floor(avail)::int, %(want)s) AS granted"
            "  FROM (SELECT provider, clock_timestamp() AS t, least(%(burst)s::float8, tokens"
            "   + %(rate)s * greatest(0, extract(epoch FROM clock_timestamp() - refilled_at)))"
            "   AS avail FROM crm_msg_rate_buckets WHERE provider = %(p)s FOR UPDATE) y) x"
            " WHERE b.provider = x.provider RETURNING x.granted",
            {"want": want, "burst": float(burst), "rate": rate_per_s, "p": provider},
        )
    row = cur.fetchone()
    return int(row[0]) if row is not None else 0


def profile_attributes(conn: Conn, profile_id: int) -> dict[str, Any]:
    """The golden attributes of the live profile (for personalisation)."""
    row = conn.execute(
        # a scalar subquery: compared directly, the STABLE function would run once per row
        "SELECT attributes FROM crm_profiles WHERE id = (SELECT crm_resolve_profile(%s))",
        (profile_id,),
    ).fetchone()
    return dict(row[0]) if row is not None else {}


def suppress(conn: Conn, profile_id: int, channel: str, reason: str) -> None:
    """Suppress a channel for a person; a hard bounce outranks the other reasons."""
    conn.execute(
        "INSERT INTO crm_msg_suppressions (profile_id, channel, reason) VALUES (%s, %s, %s)"
        " ON CONFLICT (profile_id, channel) DO UPDATE SET reason = CASE"
        " WHEN crm_msg_suppressions.reason = 'hard_bounce' THEN 'hard_bounce'"
        " ELSE EXCLUDED.reason END",
        (profile_id, channel, reason),
    )


def message_by_provider_id(conn: Conn, provider_id: str) -> Row | None:
    """The message a provider's receipt is about."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, profile_id, channel FROM crm_message_outbox WHERE provider_id = %s",
            (provider_id,),
        ).fetchone()


def template_variants(conn: Conn, name: str, channel: str) -> list[Row]:
    """Every locale variant of a template on a channel."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, name, channel, locale, format, subject, body, created_at, updated_at"
            " FROM crm_msg_templates WHERE name = %s AND channel = %s ORDER BY locale",
            (name, channel),
        ).fetchall()


def upsert_template(conn: Conn, **values: Any) -> Row:
    """Create or replace one locale variant."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO crm_msg_templates (name, channel, locale, format, subject, body)"
            " VALUES (%(name)s, %(channel)s, %(locale)s, %(format)s, %(subject)s, %(body)s)"
            " ON CONFLICT (name, channel, locale) DO UPDATE SET format = EXCLUDED.format,"
            " subject = EXCLUDED.subject, body = EXCLUDED.body, updated_at = now()"
            " RETURNING id, name, channel, locale, format, subject, body, created_at, updated_at",
            values,
        ).fetchone()
    assert row is not None
    return row


def list_templates(conn: Conn, limit: int, offset: int) -> list[Row]:
    """Templates by name, channel and locale."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, name, channel, locale, format, subject, body, created_at, updated_at"
            " FROM crm_msg_templates ORDER BY name, channel, locale LIMIT %s OFFSET %s",
            (limit, offset),
        ).fetchall()


def delete_template(conn: Conn, name: str, channel: str, locale: str) -> bool:
    """Delete one locale variant; whether it existed."""
    cur = conn.execute(
        "DELETE FROM crm_msg_templates WHERE name = %s AND channel = %s AND locale = %s",
        (name, channel, locale),
    )
    return cur.rowcount == 1


def inbox(conn: Conn, profile_ids: Sequence[int], limit: int, before: int | None) -> list[Row]:
    """A person's in-app messages, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, message_id, title, body, created_at, read_at FROM crm_msg_inbox"
            " WHERE profile_id = ANY(%s) AND (%s::bigint IS NULL OR id < %s)"
            " ORDER BY id DESC LIMIT %s",
            (list(profile_ids), before, before, limit),
        ).fetchall()


_AUDIENCE_SEGMENT = (
    "SELECT DISTINCT CASE WHEN p.merged_into IS NULL THEN p.id"
    " ELSE crm_resolve_profile(p.id) END AS pid"
    " FROM crm_segment_members m JOIN crm_profiles p ON p.id = m.profile_id"
    " WHERE m.segment_id = %(segment)s AND m.exited_at IS NULL"
)
_AUDIENCE_LIST = (
    "SELECT DISTINCT CASE WHEN p.merged_into IS NULL THEN p.id"
    " ELSE crm_resolve_profile(p.id) END AS pid"
    " FROM crm_profiles p WHERE p.id = ANY(%(profiles)s::bigint[])"
)


def insert_campaign(conn: Conn, **values: Any) -> tuple[Row, bool]:
    """Insert a campaign once per idempotency key; (its row, created)."""
    cols = ", ".join(values)
    marks = ", ".join(f"%({k})s" for k in values)
    params = {k: Jsonb(v) if k == "variables" else v for k, v in values.items()}
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"INSERT INTO crm_msg_campaigns ({cols}) VALUES ({marks})"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
            params,
        ).fetchone()
        if row is not None:
            return row, True
        found = cur.execute(
            "SELECT * FROM crm_msg_campaigns WHERE idempotency_key = %s",
            (values["idempotency_key"],),
        ).fetchone()
    assert found is not None
    return found, False


def queue_campaign_messages(
    conn: Conn,
    campaign: Row,
    *,
    kinds: Sequence[str],
    profile_ids: Sequence[int] | None,
) -> tuple[int, int]:
    """Queue one message per live person of the audience who has an address for the channel,
    in one INSERT ... SELECT; (audience size, messages queued). `kinds` empty: in-app."""
    audience = _AUDIENCE_LIST if profile_ids is not None else _AUDIENCE_SEGMENT
    if kinds:
        # the newest unblocked identifier of the best kind, as service.address_of picks it
        addressed = (
            "SELECT DISTINCT ON (pid) pid, value AS address FROM (SELECT a.pid, i.kind, i.value,"
            "  min(i.created_at) AS first_seen FROM aud a"
            "  JOIN crm_records r ON r.profile_id = a.pid"
            "  JOIN crm_identifiers i ON i.record_id = r.id AND i.kind = ANY(%(kinds)s::text[])"
            "  LEFT JOIN crm_identifier_blocks b ON b.kind = i.kind AND b.value = i.value"
            "  GROUP BY a.pid, i.kind, i.value"
            "  HAVING NOT (bool_or(b.kind IS NOT NULL)"
            "   OR bool_and(i.unlinked_by_merge IS NOT NULL))"
            " ) x ORDER BY pid, array_position(%(kinds)s::text[], kind), first_seen DESC, value"
        )
    else:
        addressed = "SELECT a.pid, 'profile:' || a.pid AS address FROM aud a"
    row = conn.execute(
        f"WITH aud AS MATERIALIZED ({audience}), addressed AS ({addressed}),"
        " ins AS (INSERT INTO crm_message_outbox (profile_id, channel, address, template, payload,"
        "  purpose, priority, locale, campaign_id)"
        "  SELECT pid, %(channel)s, address, %(template)s, %(variables)s, %(purpose)s,"
        "  %(priority)s, %(locale)s, %(campaign)s FROM addressed RETURNING 1)"
        " SELECT (SELECT count(*) FROM aud), (SELECT count(*) FROM ins)",
        {
            "segment": campaign["segment_id"], "profiles": list(profile_ids or []),
            "kinds": list(kinds), "channel": campaign["channel"],
            "template": campaign["template"], "variables": Jsonb(campaign["variables"]),
            "purpose": campaign["purpose"], "priority": campaign["priority"],
            "locale": campaign["locale"], "campaign": campaign["id"],
        },
    ).fetchone()  # fmt: skip
    assert row is not None
    conn.execute(
        "UPDATE crm_msg_campaigns SET audience = %s, queued = %s WHERE id = %s",
        (row[0], row[1], campaign["id"]),
    )
    return int(row[0]), int(row[1])


def campaign_status_counts(conn: Conn, campaign_id: int) -> dict[str, int]:
    """How many of a campaign's messages are in each status."""
    rows = conn.execute(
        "SELECT status, count(*) FROM crm_message_outbox WHERE campaign_id = %s GROUP BY status",
        (campaign_id,),
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def get_campaign(conn: Conn, campaign_id: int) -> Row | None:
    """One campaign."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM crm_msg_campaigns WHERE id = %s", (campaign_id,)
        ).fetchone()


def segment_exists(conn: Conn, segment_id: int) -> bool:
    """Whether a live (not archived) segment has this id."""
    row = conn.execute(
        "SELECT 1 FROM crm_segments WHERE id = %s AND archived_at IS NULL", (segment_id,)
    ).fetchone()
    return row is not None


def messages_in_doubt(conn: Conn, *, after: int, limit: int) -> list[Row]:
    """`uncertain` messages (a send whose outcome died with its worker), by id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM crm_message_outbox WHERE status = 'uncertain'"
            " AND id > %s ORDER BY id LIMIT %s",
            (after, limit),
        ).fetchall()


def resolve_in_doubt(
    conn: Conn, message_id: int, *, status: str, reason: str, at: datetime
) -> bool:
    """Move an `uncertain` message to `status` (queued: sent again) and record the review;
    False when it is not in doubt."""
    row = conn.execute(
        "WITH u AS (UPDATE crm_message_outbox SET status = %(status)s, not_before = NULL,"
        " lease_token = NULL, lease_until = NULL, send_seq = NULL, send_started_at = NULL,"
        " sent_at = CASE WHEN %(status)s = 'sent' THEN %(at)s ELSE sent_at END"
        " WHERE id = %(id)s AND status = 'uncertain' RETURNING id)"
        " INSERT INTO crm_msg_decisions (message_id, decision, reason, decided_at)"
        " SELECT id, 'review', %(reason)s, %(at)s FROM u RETURNING message_id",
        {"status": status, "id": message_id, "reason": reason, "at": at},
    ).fetchone()
    return row is not None
