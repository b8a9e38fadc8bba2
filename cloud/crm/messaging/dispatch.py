"""The dispatcher: works the durable outbox (crm_message_outbox) with per-message leases.

A message moves queued -> claimed (leased to one worker, committed) -> sending (committed just
before the provider is called) -> sent (the provider's id committed before the Celery task is
acknowledged). A worker that dies while `claimed` never called the provider: the claim expires
and the message is queued again. A worker that dies while `sending` may have been accepted by
the provider: the message is resent only on a channel that drops duplicates (`idempotent`),
otherwise it becomes `uncertain` with the reason recorded, and is never sent twice.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from cloud.crm.messaging import repository as repo
from cloud.crm.messaging.builtin import BUILTIN
from cloud.crm.messaging.channels.base import (
    Channel,
    ChannelError,
    OutboundMessage,
    RateLimitedError,
)
from cloud.crm.messaging.config import MessagingConfig
from cloud.crm.messaging.errors import TemplateError
from cloud.crm.messaging.policy import WINDOWS, Action, Decision, Facts, decide
from cloud.crm.messaging.templates import Rendered, Template, pick_locale, render

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]


@dataclass
class Counts:
    """What one dispatch run did."""

    sent: int = 0
    deferred: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    requeued: int = 0

    def add(self, other: Counts) -> None:
        """Accumulate another run's counts."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def find_template(conn: Conn, name: str, channel: str, locale: str | None) -> Template:
    """The best locale variant of a template (database first, then the built-in ones)."""
    rows = repo.template_variants(conn, name, channel)
    variants = [
        Template(
            name=r["name"],
            channel=r["channel"],
            locale=r["locale"],
            format=r["format"],
            body=r["body"],
            subject=r["subject"],
        )
        for r in rows
    ] or BUILTIN.get((name, channel), [])
    chosen = pick_locale([v.locale for v in variants], locale)
    if chosen is None:
        raise TemplateError(f"no template {name!r} for channel {channel!r}")
    return next(v for v in variants if v.locale == chosen)


@dataclass
class Dispatcher:
    """Claims due messages, applies the policy, renders, sends and records every outcome."""

    config: MessagingConfig
    channels: dict[str, Channel]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    jitter: Callable[[], float] = field(default=random.random)
    _templates: dict[tuple[str, str, str | None], Template] = field(
        default_factory=dict, init=False, repr=False
    )

    def run(self, conn: Conn, *, max_batches: int = 100) -> Counts:
        """Recover expired leases, then work batches until none is due (or max_batches)."""
        total = self.recover(conn)
        for _ in range(max_batches):
            counts, claimed = self.run_batch(conn)
            total.add(counts)
            if claimed < self.config.batch_size:
                break
        return total

    def recover(self, conn: Conn) -> Counts:
        """Requeue expired claims; resolve expired sends (resend if idempotent, else uncertain)."""
        now, counts = self.clock(), Counts()
        with conn.transaction():
            counts.requeued = repo.requeue_unstarted(conn, now)
            for row in repo.expired_sends(conn, now):
                channel = self.channels.get(row["channel"])
                if channel is not None and channel.idempotent:
                    repo.transition(
                        conn, row["id"], None, status="queued", lease_token=None, lease_until=None
                    )
                    reason = "worker lost during the provider call; the channel drops duplicates"
                    repo.record_decision(conn, row["id"], "retry", reason, now)
                    counts.requeued += 1
                else:
                    repo.transition(
                        conn, row["id"], None, status="uncertain", lease_token=None,
                        last_error="worker lost during the provider call",
                    )  # fmt: skip
                    reason = (
                        "worker lost during the provider call; the provider may have accepted"
                        " it and this channel cannot drop a duplicate, so it is not resent"
                    )
                    repo.record_decision(conn, row["id"], "uncertain", reason, now)
                    counts.uncertain += 1
        conn.commit()
        return counts

    def run_batch(self, conn: Conn) -> tuple[Counts, int]:
        """Claim one batch and work it, one commit per step of each message."""
        token = uuid.uuid4()
        lease = timedelta(seconds=self.config.lease_s)
        rows = repo.claim_due(
            conn, token=token, now=self.clock(), lease=lease, limit=self.config.batch_size
        )
        conn.commit()
        self._templates.clear()
        counts = Counts()
        for row in rows:
            self._process(conn, row, token, counts)
        return counts, len(rows)

    def _process(self, conn: Conn, row: dict[str, Any], token: uuid.UUID, counts: Counts) -> None:
        now, mid = self.clock(), row["id"]
        channel = self.channels.get(row["channel"])
        if channel is None:
            self._final(conn, row, token, "failed", f"no channel {row['channel']!r} configured")
            counts.failed += 1
            return
        decision = self._decide(conn, row, now)
        if decision.action is Action.SKIP:
            self._final(conn, row, token, "skipped", decision.reason)
            counts.skipped += 1
            return
        if decision.action is Action.DEFER:
            repo.transition(
                conn, mid, token, status="queued", not_before=decision.until,
                lease_token=None, lease_until=None,
            )  # fmt: skip
            repo.record_decision(conn, mid, "defer", decision.reason, now)
            conn.commit()
            counts.deferred += 1
            return
        try:
            rendered = self._render(conn, row)
        except TemplateError as exc:
            self._final(conn, row, token, "failed", exc.detail)
            counts.failed += 1
            return
        self._send(conn, row, token, channel, rendered, decision, counts)

    def _decide(self, conn: Conn, row: dict[str, Any], now: datetime) -> Decision:
        since = now - max(WINDOWS.values())
        facts = repo.policy_facts(conn, row["profile_id"], row["channel"], since)
        attributes = dict(facts["attributes"] or {})
        row["attributes"] = attributes  # read once, used again to render
        zone = attributes.get("time_zone") or attributes.get("timezone")
        recent = [(ch, datetime.fromisoformat(at)) for ch, at in facts["recent"] or []]
        return decide(
            Facts(
                channel=row["channel"],
                purpose=row["purpose"],
                priority=row["priority"],
                now=now,
                consent=facts["consent"],
                suppression=facts["suppression"],
                recent_sends=recent,
                time_zone=self.config.policy.zone_of(zone, attributes.get("country")),
            ),
            self.config.policy,
        )

    def _render(self, conn: Conn, row: dict[str, Any]) -> Rendered:
        attributes = row.get("attributes")
        if attributes is None:
            attributes = repo.profile_attributes(conn, row["profile_id"])
        locale = row["locale"] or attributes.get("language")
        key = (row["template"], row["channel"], locale)
        template = self._templates.get(key)
        if template is None:  # read once per batch: a campaign uses one template
            template = self._templates[key] = find_template(conn, *key)
        variables = {
            **(row["payload"] or {}),
            "profile": {"id": row["profile_id"], **attributes},
            "message": {"id": row["id"]},
        }
        if row["secret"]:
            variables["confirm_url"] = f"{self.config.confirm_url}?token={row['secret']}"
        return render(template, variables)

    def _send(
        self,
        conn: Conn,
        row: dict[str, Any],
        token: uuid.UUID,
        channel: Channel,
        rendered: Rendered,
        decision: Decision,
        counts: Counts,
    ) -> None:
        mid, now = row["id"], self.clock()
        lease_until = now + timedelta(seconds=self.config.lease_s)
        attempts = row["attempts"] + 1
        started = repo.transition(
            conn, mid, token, status="sending", attempts=attempts, lease_until=lease_until
        )
        if not started:  # the lease ran out and another worker has it now
            conn.rollback()
            return
        repo.record_decision(conn, mid, "send", decision.reason, now)
        conn.commit()
        message = OutboundMessage(
            message_id=mid,
            address=row["address"],
            subject=rendered.subject,
            body=rendered.text,
            html=rendered.html,
            profile_id=row["profile_id"],
        )
        try:
            provider_id = channel.send(message)
        except ChannelError as exc:
            self._failed_send(conn, row, token, attempts, exc, counts)
            return
        repo.transition(
            conn, mid, token, status="sent", provider_id=provider_id, sent_at=self.clock(),
            secret=None, lease_token=None, lease_until=None, last_error=None,
        )  # fmt: skip
        conn.commit()
        counts.sent += 1
        log.info("message sent", extra={"message_id": mid, "provider_id": provider_id})

    def _failed_send(
        self,
        conn: Conn,
        row: dict[str, Any],
        token: uuid.UUID,
        attempts: int,
        exc: ChannelError,
        counts: Counts,
    ) -> None:
        mid, now = row["id"], self.clock()
        if not exc.transient or attempts >= self.config.max_attempts:
            why = "permanent" if not exc.transient else f"gave up after {attempts} attempts"
            self._final(conn, row, token, "failed", f"{why}: {exc.detail}")
            counts.failed += 1
            return
        delay = self.backoff(attempts)
        if isinstance(exc, RateLimitedError):
            delay = max(delay, exc.retry_after_s)
        repo.transition(
            conn, mid, token, status="queued", not_before=now + timedelta(seconds=delay),
            last_error=exc.detail, lease_token=None, lease_until=None,
        )  # fmt: skip
        reason = f"transient error, retry {attempts + 1} in {delay:.0f}s: {exc.detail}"
        repo.record_decision(conn, mid, "retry", reason, now)
        conn.commit()
        counts.retried += 1

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with equal jitter: half the step fixed, half random."""
        step = min(self.config.backoff_max_s, self.config.backoff_base_s * 2.0 ** (attempts - 1))
        return float(step / 2 + self.jitter() * step / 2)

    def _final(
        self, conn: Conn, row: dict[str, Any], token: uuid.UUID, status: str, reason: str
    ) -> None:
        error = reason if status == "failed" else None
        repo.transition(
            conn, row["id"], token, status=status, last_error=error, lease_token=None,
            lease_until=None,
        )  # fmt: skip
        repo.record_decision(conn, row["id"], status, reason, self.clock())
        conn.commit()
