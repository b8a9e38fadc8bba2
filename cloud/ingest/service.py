"""IngestService: one transaction per batch; acknowledgements only after it commits."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import psycopg
from google.protobuf.message import DecodeError
from psycopg_pool import ConnectionPool, PoolTimeout

from cloud.core.logging import request_id_var
from cloud.core.settings import Settings
from cloud.db.repositories import deadletter, telemetry
from cloud.ingest import metrics as ingest_metrics
from cloud.ingest.errors import IngestError
from cloud.ingest.rows import COLUMNS, Batch, utc
from cloud.ingest.validate import Incoming, Limits, Reason, Rejection, decode
from protos.mallpulse.v1 import telemetry_pb2

log = logging.getLogger(__name__)
_RETRIES = 5
#: Batch ids for the logs: a per-process prefix and a counter (no entropy read per batch).
_BATCH_PREFIX = uuid.uuid4().hex[:8]
_BATCH_SEQ = itertools.count(1)


class Status(StrEnum):
    """The fate of one envelope."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one incoming message (same order as the batch)."""

    status: Status
    device_id: str = ""
    sequence: int = 0
    reason: str = ""


@dataclass
class IngestStats:
    """Counters since start."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rows: int = 0
    batches: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class _Recent:
    """Keys this process stored less than `ttl_s` ago, so a batch can skip rewriting them."""

    def __init__(self, ttl_s: float, limit: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._at: dict[Hashable, float] = {}

    def stale(self, keys: Iterable[Hashable]) -> list[Any]:
        """The keys not stored within the TTL."""
        now, at, ttl = time.monotonic(), self._at, self.ttl_s
        return [k for k in keys if now - at.get(k, -ttl) >= ttl]

    def mark(self, keys: Iterable[Hashable]) -> None:
        """Remember `keys` as stored now (call only after the commit)."""
        if len(self._at) > self.limit:
            self._at.clear()
        now = time.monotonic()
        self._at.update((k, now) for k in keys)


def limits_from(settings: Settings) -> Limits:
    """Acceptance limits from the settings."""
    return Limits(
        max_bytes=settings.ingest_max_envelope_bytes,
        max_skew_s=float(settings.ingest_max_skew_s),
        max_age_s=settings.ingest_max_age_days * 86400.0,
    )


class IngestService:
    """Validates, deduplicates and stores batches of envelopes from any transport."""

    def __init__(
        self,
        pool: ConnectionPool,
        limits: Limits,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pool = pool
        self.limits = limits
        self.clock = clock
        self.stats = IngestStats()
        self._stats_lock = threading.Lock()  # batches are stored from several threads
        #: catalogue rows (lines, zones, cameras) and device "last seen" recently written:
        #: re-registered at most once a minute, touched at most every 5 s per process
        self._catalogued = _Recent(60.0)
        self._touched = _Recent(5.0)
        self._rollup_table: bool | None = None

    def ingest(self, items: Sequence[Incoming]) -> list[Outcome]:
        """Store a batch in one transaction (retried on deadlock) and return one outcome per
        item; raises IngestError when the database is unavailable (nothing is acknowledged)."""
        token = request_id_var.set(f"batch-{_BATCH_PREFIX}-{next(_BATCH_SEQ)}")
        try:
            decoded = [decode(item, self.limits, self.clock()) for item in items]
            for attempt in range(_RETRIES):
                try:
                    outcomes = self._store(items, decoded)
                    break
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    log.warning("ingest transaction conflict; retrying", extra={"try": attempt})
                    time.sleep(0.05 * (attempt + 1))
                except (psycopg.OperationalError, PoolTimeout) as exc:
                    raise IngestError(f"database unavailable: {exc}") from exc
                except psycopg.Error as exc:  # data the checks missed: never block the stream
                    return self._isolate(items, exc)
                except (ArithmeticError, ValueError, TypeError) as exc:
                    # a value our mapping cannot handle (a bug or an unforeseen input): the
                    # culprit is dead-lettered instead of the batch being retried for ever
                    log.exception("batch could not be mapped; isolating")
                    return self._isolate(items, exc)
                except IngestError:
                    raise
                except Exception as exc:  # unforeseen: retried a few times, never for ever
                    if attempt + 1 == _RETRIES:
                        log.exception("batch keeps failing; isolating")
                        return self._isolate(items, exc)
                    log.warning(
                        "batch failed; retrying", extra={"try": attempt, "error": repr(exc)}
                    )
                    time.sleep(0.05 * (attempt + 1))
            else:
                raise IngestError("ingest transaction kept conflicting; batch not stored")
            self._count(outcomes)
            ingest_metrics.observe_commit(outcomes, decoded, self.clock())
            return outcomes
        finally:
            request_id_var.reset(token)

    def _isolate(self, items: Sequence[Incoming], exc: Exception) -> list[Outcome]:
        """A batch the database refused (or that could not be mapped to rows): store the items
        one by one, so only the culprit is dead-lettered (as `unprocessable`, raw payload kept)
        and the rest go through."""
        if len(items) > 1:
            log.warning("batch refused; isolating", extra={"error": str(exc)})
            return [outcome for item in items for outcome in self.ingest([item])]
        why = (
            f"refused by the database: {exc}"
            if isinstance(exc, psycopg.Error)
            else (f"could not be stored: {exc!r}")
        )
        return [self.dead_letter(items[0], why)]

    def dead_letter(self, item: Incoming, why: str) -> Outcome:
        """Dead-letter one message as `unprocessable` (raw payload kept) in its own transaction;
        its outcome is final (the transport acknowledges it)."""
        reason = why[:500]
        env = _parsed(item.payload)
        device = env.device_id if env is not None and env.device_id else item.device_id
        sequence = env.sequence if env is not None and 0 < env.sequence < 2**63 else None
        try:
            with self.pool.connection() as conn, conn.transaction():
                deadletter.add_dead_letters(
                    conn, [(item.transport, item.topic, device, item.store_id, sequence,
                            Reason.UNPROCESSABLE.value, reason, item.payload)],
                )  # fmt: skip
        except (psycopg.OperationalError, PoolTimeout) as down:
            raise IngestError(f"database unavailable: {down}") from down
        log.error("envelope dead-lettered as unprocessable", extra={"error": reason})
        outcome = Outcome(Status.REJECTED, device or "", sequence or 0, f"unprocessable: {reason}")
        self._count([outcome])
        return outcome

    def _store(
        self, items: Sequence[Incoming], decoded: list[telemetry_pb2.Envelope | Rejection]
    ) -> list[Outcome]:
        with self.pool.connection() as conn:
            with conn.transaction():
                if self._rollup_table is None:
                    self._rollup_table = telemetry.rollup_is_table(conn)
                known = telemetry.device_stores(
                    conn, (d.device_id for d in decoded if not isinstance(d, Rejection))
                )
                verdicts = [_ownership(d, known) for d in decoded]
                ledger = _ledger_rows(verdicts)
                fresh = telemetry.claim_envelopes(conn, list(ledger.values()))
                outcomes, batch = _classify(verdicts, fresh, ledger)
                self._write(conn, batch)
                catalogued = self._register(conn, batch)
                dead = [_dead_row(i, v) for i, v in zip(items, verdicts, strict=True)]
                deadletter.add_dead_letters(conn, [row for row in dead if row is not None])
            self._catalogued.mark(catalogued)
            # Committed. "Last seen" is best effort and kept out of the batch transaction, so
            # concurrent ingest processes do not queue behind each other's device-row locks.
            seen = self._touched.stale(
                {o.device_id for o in outcomes if o.status is not Status.REJECTED}
            )
            try:
                telemetry.touch_devices(conn, seen)
                self._touched.mark(seen)
            except psycopg.Error:
                log.warning("could not update last_seen_at", exc_info=True)
        return [
            replace(o, device_id=row[2] or "", sequence=row[4] or 0) if row is not None else o
            for o, row in zip(outcomes, dead, strict=True)
        ]

    def _write(self, conn: psycopg.Connection[Any], batch: Batch) -> None:
        for table, rows in batch.rows.items():
            telemetry.copy_rows(conn, table, COLUMNS[table], rows)
        if self._rollup_table:
            telemetry.add_hourly(conn, batch.hourly)
        telemetry.add_daily(conn, batch.lines)
        telemetry.set_live_zones(conn, batch.live_zones)
        telemetry.set_live_queues(conn, batch.live_queues)
        telemetry.publish_events(conn, batch.events)
        with self._stats_lock:
            self.stats.rows += batch.row_count

    def _register(self, conn: psycopg.Connection[Any], batch: Batch) -> list[tuple[str, ...]]:
        """Add lines, zones and cameras not registered lately; returns their keys (to remember
        once the transaction commits)."""
        items = self._catalogued.stale(("item", *k) for k in batch.catalogue)
        cameras = self._catalogued.stale(("camera", *k) for k in batch.cameras)
        telemetry.register_catalogue(conn, {k[1:] for k in items}, {k[1:] for k in cameras})
        return items + cameras

    def _count(self, outcomes: list[Outcome]) -> None:
        ingest_metrics.count(outcomes)
        with self._stats_lock:
            self._tally(outcomes)
        s = self.stats
        log.info(
            "batch stored",
            extra={"size": len(outcomes), "accepted": s.accepted, "rejected": s.rejected},
        )

    def _tally(self, outcomes: list[Outcome]) -> None:
        s = self.stats
        s.batches += 1
        for o in outcomes:
            if o.status is Status.ACCEPTED:
                s.accepted += 1
            elif o.status is Status.DUPLICATE:
                s.duplicate += 1
            else:
                s.rejected += 1
                code = o.reason.partition(":")[0]
                s.by_reason[code] = s.by_reason.get(code, 0) + 1


def _ownership(
    item: telemetry_pb2.Envelope | Rejection, known: dict[str, str]
) -> telemetry_pb2.Envelope | Rejection:
    """Reject envelopes of unknown devices and of devices publishing for another store."""
    if isinstance(item, Rejection):
        return item
    store = known.get(item.device_id)
    if store is None:
        return Rejection(Reason.UNKNOWN_DEVICE, f"device {item.device_id!r} is not registered")
    if store != item.store_id:
        return Rejection(
            Reason.STORE_MISMATCH,
            f"device {item.device_id!r} belongs to store {store!r}, not {item.store_id!r}",
        )
    return item


def _ledger_rows(
    verdicts: list[telemetry_pb2.Envelope | Rejection],
) -> dict[tuple[str, int], tuple[Any, ...]]:
    """(device, sequence) -> ledger row (device, sequence, store, kind, start, end)."""
    rows: dict[tuple[str, int], tuple[Any, ...]] = {}
    for env in verdicts:
        if isinstance(env, Rejection):
            continue
        key = (env.device_id, env.sequence)
        if key not in rows:
            rows[key] = (*key, env.store_id, env.WhichOneof("payload"), utc(env.window_start),
                         utc(env.window_end))  # fmt: skip
    return rows


def _classify(
    verdicts: list[telemetry_pb2.Envelope | Rejection],
    fresh: set[tuple[str, int]],
    ledger: dict[tuple[str, int], tuple[Any, ...]],
) -> tuple[list[Outcome], Batch]:
    outcomes: list[Outcome] = []
    batch = Batch()
    for env in verdicts:
        if isinstance(env, Rejection):
            outcomes.append(Outcome(Status.REJECTED, reason=f"{env.code.value}: {env.reason}"))
            continue
        key = (env.device_id, env.sequence)
        if key in fresh:
            fresh.discard(key)  # a second copy in the same batch is a duplicate
            row = ledger[key]
            batch.add(env, row[4], row[5])
            outcomes.append(Outcome(Status.ACCEPTED, env.device_id, env.sequence))
        else:
            outcomes.append(Outcome(Status.DUPLICATE, env.device_id, env.sequence))
    return outcomes, batch


def _parsed(payload: bytes) -> telemetry_pb2.Envelope | None:
    """The envelope in a payload, or None when it does not parse."""
    env = telemetry_pb2.Envelope()
    try:
        env.ParseFromString(payload)
    except DecodeError:
        return None
    return env


def _dead_row(
    item: Incoming, verdict: telemetry_pb2.Envelope | Rejection
) -> tuple[Any, ...] | None:
    if not isinstance(verdict, Rejection):
        return None
    env = telemetry_pb2.Envelope()
    if verdict.code is not Reason.OVERSIZE:
        try:
            env.ParseFromString(item.payload)
        except DecodeError:  # undecodable: keep only what the transport said
            env = telemetry_pb2.Envelope()
    sequence = env.sequence if 0 < env.sequence < 2**63 else None
    return (
        item.transport, item.topic, env.device_id or item.device_id, env.store_id or item.store_id,
        sequence, verdict.code.value, verdict.reason, item.payload,
    )  # fmt: skip
