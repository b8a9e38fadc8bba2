"""The dispatcher: works the durable outbox (crm_message_outbox) a batch at a time.

A batch moves queued -> claimed (leased to one worker) -> sending -> sent. The database work is
set-based: one statement claims the batch, one reads the policy facts of all of it, and one
durable commit records every decision and marks the messages to send `sending`, each with its
place in the send order. Messages then go to the provider strictly in that order, and each
outcome (provider id included) is committed, in one statement, before the next message is
handed over; the batch ends with a durable flush, before the task is acknowledged.

A worker that dies mid-batch therefore leaves, per lease, recorded outcomes followed by
`sending` rows: only the first of those may have reached the provider. Recovery marks it
`uncertain` (or queues it again on a channel that drops duplicates) and queues the rest, which
were never handed over. Per-message outcomes are committed asynchronously (no WAL flush each):
they are visible at once and survive a worker's death; only a database crash can lose them, and
sends begun before the database's last start are all treated as in doubt, never resent.
"""

from __future__ import annotations

import logging
import random
import smtplib
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import Counter, Histogram

from cloud.crm.messaging import repository as repo
from cloud.crm.messaging import tracking
from cloud.crm.messaging.builtin import BUILTIN
from cloud.crm.messaging.channels.base import (
    Channel,
    ChannelError,
    OutboundMessage,
    RateLimitedError,
)
from cloud.crm.messaging.config import MessagingConfig, RouteConfig
from cloud.crm.messaging.errors import TemplateError
from cloud.crm.messaging.policy import WINDOWS, Action, Decision, Facts, decide
from cloud.crm.messaging.templates import Rendered, Template, pick_locale, render

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
DISPATCHED = Counter(
    "mallpulse_messaging_dispatched",
    "Outbox messages by what a dispatch did with them (sent, deferred, skipped, retried, failed,"
    " uncertain, requeued, failed_over).",
    ["outcome"],
)
BATCH_SECONDS = Histogram(
    "mallpulse_messaging_batch_seconds",
    "Time to work one claimed batch, sends included.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


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
    failed_over: int = 0

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


def outcome_unknown(exc: ChannelError) -> bool:
    """Whether the provider may have accepted the message despite the error.

    An adapter may say so with an `outcome_unknown` attribute; otherwise: an answer from the
    server (an SMTP reply code, a rate limit, a permanent refusal) or a connection never made
    means it was not accepted; a connection lost or timed out mid-conversation means unknown.
    """
    flag = getattr(exc, "outcome_unknown", None)
    if flag is not None:
        return bool(flag)
    if not exc.transient or isinstance(exc, RateLimitedError):
        return False
    cause = exc.__cause__
    if isinstance(cause, smtplib.SMTPResponseException | ConnectionRefusedError | socket.gaierror):
        return False
    return isinstance(cause, OSError | smtplib.SMTPServerDisconnected) or _http_unknown(cause)


def _http_unknown(cause: BaseException | None) -> bool:
    import httpx  # HTTP adapters translate httpx errors; only a request sent can be unknown

    if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return False
    return isinstance(cause, httpx.TimeoutException | httpx.RemoteProtocolError | httpx.ReadError)


@dataclass
class Circuit:
    """Opens after `threshold` consecutive transient failures; after `cooldown_s` one trial."""

    threshold: int = 5
    cooldown_s: float = 30.0
    failures: int = 0
    open_until: datetime | None = None

    def is_open(self, now: datetime) -> bool:
        """Whether the provider is skipped now."""
        return self.open_until is not None and now < self.open_until

    def failure(self, now: datetime) -> None:
        """Count a transient failure; open when the threshold is reached."""
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + timedelta(seconds=self.cooldown_s)

    def success(self) -> None:
        """Close the circuit."""
        self.failures, self.open_until = 0, None


@dataclass
class Provider:
    """One provider of a channel, with its shared rate limit and its circuit breaker."""

    name: str
    channel: Channel
    rate_per_s: float | None = None
    burst: int | None = None
    circuit: Circuit = field(default_factory=Circuit)

    def take(self, conn: Conn, want: int) -> int:
        """Tokens granted from the provider's bucket (all of them without a limit)."""
        if self.rate_per_s is None:
            return want
        burst = self.burst or max(1, int(self.rate_per_s))
        return repo.take_tokens(conn, self.name, want, self.rate_per_s, burst)


def providers_of(route: RouteConfig, build: Callable[[Any], Channel]) -> list[Provider]:
    """The providers of a configured route, adapters built by `build(config)`."""
    return [
        Provider(
            name=p.name, channel=build(p.config), rate_per_s=p.rate_per_s, burst=p.burst,
            circuit=Circuit(route.circuit_failures, route.circuit_cooldown_s),
        )
        for p in route.providers
    ]  # fmt: skip


@dataclass
class _Send:
    row: dict[str, Any]
    message: OutboundMessage
    reason: str
    first: int  # index of the provider to try first


@contextmanager
def _send_mode(conn: Conn) -> Iterator[None]:
    """Autocommit with asynchronous commits (durable steps ask for a flush), then restored."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()
    autocommit = conn.autocommit
    conn.autocommit = True
    conn.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        if not conn.closed:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            conn.execute("RESET synchronous_commit")
            conn.autocommit = autocommit


@dataclass
class Dispatcher:
    """Claims due messages, applies the policy, renders, sends and records every outcome."""

    config: MessagingConfig
    channels: dict[str, Channel]
    providers: dict[str, list[Provider]] = field(default_factory=dict)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    jitter: Callable[[], float] = field(default=random.random)
    _templates: dict[tuple[str, str, str | None], Template] = field(
        default_factory=dict, init=False, repr=False
    )
    _single: dict[str, list[Provider]] = field(default_factory=dict, init=False, repr=False)

    def route(self, channel: str) -> list[Provider]:
        """The providers of a channel in failover order (empty: not configured)."""
        if channel in self.providers:
            return self.providers[channel]
        if channel not in self._single and channel in self.channels:
            self._single[channel] = [Provider(name=channel, channel=self.channels[channel])]
        return self._single.get(channel, [])

    def run(self, conn: Conn, *, max_batches: int = 100) -> Counts:
        """Recover lost sends, then work batches until none is due (or max_batches)."""
        with _send_mode(conn):
            total = self.recover(conn)
            for _ in range(max_batches):
                with BATCH_SECONDS.time():
                    counts, claimed = self.run_batch(conn)
                total.add(counts)
                if claimed < self.config.batch_size:
                    break
        for outcome, n in total.__dict__.items():
            if n:
                DISPATCHED.labels(outcome).inc(n)
        return total

    def recover(self, conn: Conn) -> Counts:
        """Requeue expired claims; resolve lost sends (see the module docstring)."""
        now, counts = self.clock(), Counts()
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit TO on")
            counts.requeued = repo.requeue_unstarted(conn, now)
            first_of: dict[Any, int] = {}
            for row in repo.lost_sends(conn, now):
                channel = self.channels.get(row["channel"]) or next(
                    (p.channel for p in self.route(row["channel"])), None
                )
                first = first_of.setdefault(row["lease_token"], row["id"])
                in_doubt = row["doubtful"] or first == row["id"]
                if channel is not None and channel.idempotent:
                    reason = "worker lost during the provider call; the channel drops duplicates"
                    self._requeue_lost(conn, row["id"], reason, now)
                    counts.requeued += 1
                elif in_doubt:
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
                else:
                    reason = (
                        "worker lost before handing this message over (an earlier message of"
                        " its batch was in flight); queued again"
                    )
                    self._requeue_lost(conn, row["id"], reason, now)
                    counts.requeued += 1
        return counts

    @staticmethod
    def _requeue_lost(conn: Conn, message_id: int, reason: str, now: datetime) -> None:
        repo.transition(
            conn, message_id, None, status="queued", lease_token=None, lease_until=None,
            send_seq=None, send_started_at=None,
        )  # fmt: skip
        repo.record_decision(conn, message_id, "retry", reason, now)

    def run_batch(self, conn: Conn) -> tuple[Counts, int]:
        """Claim one batch and work it (see the module docstring)."""
        token, now, counts = uuid.uuid4(), self.clock(), Counts()
        lease = timedelta(seconds=self.config.lease_s)
        rows = repo.claim_due(conn, token=token, now=now, lease=lease, limit=self.config.batch_size)
        if not rows:
            return counts, 0
        self._templates.clear()  # read once per batch: edits show in the next one
        finals, sends = self._plan(conn, rows, now, counts)
        started = repo.mark_batch(
            conn, token=token, now=now, lease_until=now + lease, finals=finals,
            sends=[(s.row["id"], s.reason) for s in sends],
        )  # fmt: skip
        # stop handing messages over well before the lease runs out: after it, recovery may
        # requeue the rest of the batch for another worker
        deadline = now + lease / 2
        todo = [s for s in sends if s.row["id"] in started]
        for i, item in enumerate(todo):
            if self.clock() >= deadline:
                rest = [s.row["id"] for s in todo[i:]]
                why = "the batch's lease was running out before this message was handed over"
                counts.requeued += repo.release_unsent(conn, token, rest, why, self.clock())
                break
            self._deliver(conn, token, item, counts)
        repo.flush(conn)
        log.info("message batch dispatched", extra={"lease": str(token), **counts.__dict__})
        return counts, len(rows)

    def _plan(
        self, conn: Conn, rows: list[dict[str, Any]], now: datetime, counts: Counts
    ) -> tuple[list[repo.Final], list[_Send]]:
        facts = repo.policy_facts_batch(conn, rows, now - max(WINDOWS.values()))
        finals: list[repo.Final] = []
        wanted: dict[str, list[_Send]] = {}
        # sends planned earlier in this batch count towards the caps of the same person
        planned: dict[Any, list[tuple[str, datetime]]] = {}
        for row in rows:
            mid = row["id"]
            if not self.route(row["channel"]):
                reason = f"no channel {row['channel']!r} configured"
                finals.append(repo.Final(mid, "failed", "failed", reason))
                counts.failed += 1
                continue
            fact = facts.get(mid) or {}
            earlier = planned.setdefault(fact.get("live") or row["profile_id"], [])
            decision = self._decide(row, fact, earlier, now)
            if decision.action is not Action.SEND:
                defer = decision.action is Action.DEFER
                status = "queued" if defer else "skipped"
                name = "defer" if defer else "skipped"
                finals.append(repo.Final(mid, status, name, decision.reason, decision.until))
                counts.deferred += defer
                counts.skipped += not defer
                continue
            try:
                rendered = self._render(conn, row)
            except TemplateError as exc:
                finals.append(repo.Final(mid, "failed", "failed", exc.detail))
                counts.failed += 1
                continue
            if row["purpose"] == "marketing":
                earlier.append((row["channel"], now))
            wanted.setdefault(row["channel"], []).append(
                _Send(row, self._message(row, rendered), decision.reason, 0)
            )
        sends: list[_Send] = []
        for channel, items in wanted.items():
            sends += self._allot(conn, self.route(channel), items, now, finals, counts)
        return finals, sends

    def _allot(
        self,
        conn: Conn,
        route: list[Provider],
        items: list[_Send],
        now: datetime,
        finals: list[repo.Final],
        counts: Counts,
    ) -> list[_Send]:
        """Give each message a provider: the first with a closed circuit and a free token."""
        out: list[_Send] = []
        notes: list[str] = []
        for index, provider in enumerate(route):
            if not items:
                break
            if provider.circuit.is_open(now):
                notes.append(f"{provider.name}: circuit open")
                continue
            granted = provider.take(conn, len(items))
            for item in items[:granted]:
                item.first = index
                if notes:
                    item.reason += "; " + ", ".join(notes) + f"; via {provider.name}"
            out += items[:granted]
            items = items[granted:]
            if items:
                notes.append(f"{provider.name}: rate limit {provider.rate_per_s}/s reached")
        # no provider can take them now: deferred (never dropped), spread over the time the
        # buckets need to refill, so that each waits about once instead of every batch
        rate = sum(p.rate_per_s or 0.0 for p in route if not p.circuit.is_open(now))
        reopen = min((p.circuit.open_until for p in route if p.circuit.open_until), default=None)
        for i, item in enumerate(items):
            if rate > 0:
                until = now + timedelta(seconds=(i + 1 + self.jitter()) / rate)
            else:
                until = max(reopen or now, now) + timedelta(seconds=1.0 + self.jitter())
            reason = "no provider available now (" + ", ".join(notes) + "); deferred"
            finals.append(repo.Final(item.row["id"], "queued", "defer", reason, until))
            counts.deferred += 1
        return out

    def _decide(
        self,
        row: dict[str, Any],
        facts: dict[str, Any],
        earlier: list[tuple[str, datetime]],
        now: datetime,
    ) -> Decision:
        attributes = dict(facts.get("attributes") or {})
        row["attributes"] = attributes  # read once, used again to render
        zone = attributes.get("time_zone") or attributes.get("timezone")
        recent = [(ch, datetime.fromisoformat(at)) for ch, at in facts.get("recent") or []]
        recent += earlier
        return decide(
            Facts(
                channel=row["channel"],
                purpose=row["purpose"],
                priority=row["priority"],
                now=now,
                consent=facts.get("consent"),
                suppression=facts.get("suppression"),
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
        if template is None:  # a campaign uses one template: read once per batch
            template = self._templates[key] = find_template(conn, *key)
        variables = {
            **(row["payload"] or {}),
            "profile": {"id": row["profile_id"], **attributes},
            "message": {"id": row["id"]},
        }
        if row["secret"]:
            variables["confirm_url"] = f"{self.config.confirm_url}?token={row['secret']}"
        return tracking.instrument(render(template, variables), row["id"])

    @staticmethod
    def _message(row: dict[str, Any], rendered: Rendered) -> OutboundMessage:
        return OutboundMessage(
            message_id=row["id"], address=row["address"], subject=rendered.subject,
            body=rendered.text, html=rendered.html, profile_id=row["profile_id"],
        )  # fmt: skip

    def _deliver(self, conn: Conn, token: uuid.UUID, item: _Send, counts: Counts) -> None:
        """Hand one message to its providers in order; commit the outcome before returning."""
        route, mid, notes = self.route(item.row["channel"]), item.row["id"], []
        attempts, last = item.row["attempts"] + 1, None
        for index in range(item.first, len(route)):
            provider = route[index]
            if provider.circuit.is_open(self.clock()):
                notes.append(f"{provider.name}: circuit open")
                continue
            if index > item.first and not provider.take(conn, 1):
                notes.append(f"{provider.name}: rate limit reached")
                continue
            try:
                provider_id = provider.channel.send(item.message)
            except ChannelError as exc:
                if exc.transient:
                    provider.circuit.failure(self.clock())
                if outcome_unknown(exc) and not provider.channel.idempotent:
                    why = f"{provider.name}: outcome unknown ({exc.detail}); not resent: review it"
                    self._record(
                        conn, token, mid, "uncertain", "uncertain", why, last_error=exc.detail
                    )
                    counts.uncertain += 1
                    return
                if not exc.transient:
                    why = f"permanent: {exc.detail}"
                    self._record(conn, token, mid, "failed", "failed", why, last_error=why)
                    counts.failed += 1
                    return
                notes.append(f"{provider.name}: {exc.detail}")
                last = exc
                continue
            provider.circuit.success()
            via = f"accepted by {provider.name} as {provider_id}"
            if notes:
                via += " after failover (" + "; ".join(notes) + ")"
                counts.failed_over += 1
            self._record(
                conn, token, mid, "sent", "sent", via, provider_id=provider_id,
                provider=provider.name, sent_at=self.clock(), secret=None, last_error=None,
            )  # fmt: skip
            counts.sent += 1
            return
        self._retry(conn, token, mid, attempts, notes, last, counts)

    def _retry(
        self,
        conn: Conn,
        token: uuid.UUID,
        mid: int,
        attempts: int,
        notes: list[str],
        exc: ChannelError | None,
        counts: Counts,
    ) -> None:
        detail = "; ".join(notes) or "no provider available"
        if attempts >= self.config.max_attempts:
            why = f"gave up after {attempts} attempts: {detail}"
            self._record(conn, token, mid, "failed", "failed", why, last_error=why)
            counts.failed += 1
            return
        delay = self.backoff(attempts)
        if isinstance(exc, RateLimitedError):
            delay = max(delay, exc.retry_after_s)
        why = f"transient error, retry {attempts + 1} in {delay:.0f}s: {detail}"
        self._record(
            conn, token, mid, "retry", "queued", why, last_error=detail, lease_token=None,
            lease_until=None, not_before=self.clock() + timedelta(seconds=delay),
        )  # fmt: skip
        counts.retried += 1

    def _record(
        self, conn: Conn, token: uuid.UUID, mid: int, decision: str, status: str, reason: str,
        **values: Any,
    ) -> None:  # fmt: skip
        values.setdefault("lease_token", None)
        values.setdefault("lease_until", None)
        ok = repo.record_outcome(
            conn, mid, token, decision=decision, reason=reason, at=self.clock(), status=status,
            **values,
        )  # fmt: skip
        if not ok:  # the lease ran out and recovery took the message: it decides now
            log.warning("lease lost before the outcome was recorded", extra={"message_id": mid})
        else:
            log.debug("message %s", decision, extra={"message_id": mid, "reason": reason})

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with full jitter: uniform between 0 and the exponential step."""
        step = min(self.config.backoff_max_s, self.config.backoff_base_s * 2.0 ** (attempts - 1))
        return float(self.jitter() * step)
