"""Exactly-once learning from the CRM's tables: one batch per database transaction.

A batch loads the model (version v) and its watermarks, reads the next source rows, validates them
(invalid rows go to `ml_rejected_events` and never reach the model), applies the valid ones to the
customer states and the model, then writes states, the new watermarks and model version v+1 in
the same transaction. If another process saved first, the version check fails and everything of
this batch rolls back: a row is learnt once or not at all. Ids are handed out before commit, so
the read never passes a missing id that a transaction still writing may fill (see `_committed`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg

from cloud.core.domain_events import committed_after
from cloud.core.logging import request_id_var
from cloud.db.repositories import ml_customers as cust_repo
from cloud.db.repositories import ml_models as model_repo
from cloud.ml.churn.engine import ChurnConfig, ChurnEngine, InMemoryCustomerStore, next_due
from cloud.ml.churn.features import CustomerState, merge_states
from cloud.ml.churn.model import ChurnModel
from cloud.ml.churn.sources import (
    CrmTouchpointSource,
    CrmTransactionSource,
    EventSource,
    SourcedEvent,
    fetch_merges,
)
from cloud.ml.churn.store import CHURN_MODEL, LoadedModel, load_model, save_model
from cloud.ml.errors import InvalidEventError
from cloud.ml.events import validate

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
R = TypeVar("R")


@dataclass(frozen=True)
class BatchResult:
    """What one consume call did."""

    read: int
    applied: int
    rejected: int
    skipped: int
    samples_seen: int
    version: int | None
    busy: bool = False  # another consumer held the lock, or rows wait behind an open transaction
    customers: tuple[str, ...] = ()


def default_sources() -> list[EventSource]:
    """The CRM transactions and touchpoints."""
    return [CrmTransactionSource(), CrmTouchpointSource()]


def consume_batch(
    conn: Conn,
    *,
    config: ChurnConfig,
    new_model: ChurnModel,
    sources: Sequence[EventSource] | None = None,
    limit: int = 5000,
    name: str = CHURN_MODEL,
    now: datetime | None = None,
) -> BatchResult:
    """Consume up to `limit` rows per source in one transaction (see the module docstring)."""
    token = request_id_var.set(request_id_var.get() or f"churn-{uuid.uuid4().hex[:12]}")
    try:
        with conn.transaction():
            got = conn.execute(
                "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"ml:{name}",)
            ).fetchone()
            if not got or not got[0]:
                return BatchResult(0, 0, 0, 0, 0, None, busy=True)
            loaded = load_model(conn, name, create=new_model)
            crm = sources is None  # the CRM's merges are folded only when reading the CRM
            srcs = default_sources() if sources is None else sources
            return _consume(conn, loaded, config, srcs, limit, name, now, crm)
    finally:
        request_id_var.reset(token)


def _read(
    conn: Conn, loaded: LoadedModel, sources: Sequence[EventSource], limit: int
) -> tuple[list[SourcedEvent], bool]:
    """The rows to learn, and whether a missing id held a source back."""
    rows: list[SourcedEvent] = []
    held = False
    for src in sources:
        after = loaded.watermarks.get(src.name, 0)
        got, waits = _committed(conn, src.name, _source_read(conn, src, limit), _row_id, after)
        held = held or waits
        if got:
            loaded.watermarks[src.name] = max(r.row_id for r in got)
        rows.extend(got)
    return rows, held


def _committed(
    conn: Conn, table: str, fetch: Callable[[int], list[R]], row_id: Callable[[R], int], after: int
) -> tuple[list[R], bool]:
    """Rows past the watermark that can be passed for good (the outbox's rule, shared: see
    cloud.core.domain_events.committed_after)."""
    return committed_after(conn, table, fetch, row_id, after)


def _source_read(conn: Conn, src: EventSource, limit: int) -> Callable[[int], list[SourcedEvent]]:
    return lambda after: src.fetch(conn, after_id=after, limit=limit)


def _row_id(row: SourcedEvent) -> int:
    return row.row_id


def _consume(
    conn: Conn,
    loaded: LoadedModel,
    config: ChurnConfig,
    sources: Sequence[EventSource],
    limit: int,
    name: str,
    now: datetime | None,
    fold_merges: bool,
) -> BatchResult:
    merged = _fold_merges(conn, loaded, config, name) if fold_merges else 0
    rows, held = _read(conn, loaded, sources, limit)
    if not rows and not merged:  # held: rows wait behind an open transaction; try again soon
        return BatchResult(0, 0, 0, 0, loaded.model.samples_seen, loaded.version, busy=held)
    valid, rejected, skipped = _screen(conn, rows, now or datetime.now(UTC))
    valid.sort(key=lambda r: (r.event.occurred_at if r.event else datetime.min, r.row_id))
    engine = _engine_for(conn, loaded.model, config, valid, name)
    for row in valid:
        assert row.event is not None
        engine.apply(row.event)
    _write_back(conn, engine, name)
    version = save_model(conn, loaded, name)
    _record_drift(conn, engine, name, version)
    log.info(
        "churn batch learnt",
        extra={
            "read": len(rows),
            "applied": len(valid),
            "rejected": rejected,
            "version": version,
            "samples_seen": loaded.model.samples_seen,
        },
    )
    touched = tuple(sorted({r.event.customer_id for r in valid if r.event}))
    samples = loaded.model.samples_seen
    return BatchResult(
        len(rows), len(valid), rejected, skipped, samples, version, customers=touched
    )


MERGES = "crm_merges"


def _screen(
    conn: Conn, rows: Sequence[SourcedEvent], now: datetime
) -> tuple[list[SourcedEvent], int, int]:
    """Valid rows, and counts of rejected (dead-lettered) and skipped (not an event) rows."""
    valid: list[SourcedEvent] = []
    rejected = skipped = 0
    for row in rows:
        if row.event is None:
            skipped += 1
            continue
        try:
            if row.error:
                raise InvalidEventError(f"{row.event.source_id}: {row.error}")
            validate(row.event, now=now)
        except InvalidEventError as exc:
            model_repo.reject_event(
                conn,
                source=row.source,
                source_id=str(row.row_id),
                reason=exc.detail,
                payload=row.payload,
            )
            log.warning("event rejected", extra={"source": row.source, "reason": exc.detail})
            rejected += 1
            continue
        valid.append(row)
    return valid, rejected, skipped


def _fold_merges(conn: Conn, loaded: LoadedModel, config: ChurnConfig, name: str) -> int:
    """Fold the state of every newly merged (absorbed) profile into its survivor's state."""
    after = loaded.watermarks.get(MERGES, 0)
    merges, _ = _committed(
        conn, MERGES, lambda a: fetch_merges(conn, after_id=a), lambda m: m[0], after
    )
    folded = 0
    for merge_id, survivor, absorbed, undone in merges:
        loaded.watermarks[MERGES] = merge_id
        if undone:
            continue
        raw = {d["customer_id"]: d for d in cust_repo.load_states(conn, name, [survivor, absorbed])}
        if absorbed not in raw:
            continue
        into = CustomerState.from_json(raw[survivor]) if survivor in raw else None
        state = merge_states(
            into or CustomerState(survivor), CustomerState.from_json(raw[absorbed])
        )
        cust_repo.save_states(
            conn, name, [(survivor, state.home_store, state.to_json(), next_due(state, config))]
        )
        cust_repo.delete_customer(conn, name, absorbed)
        folded += 1
    if folded:
        log.info("merged customer states folded", extra={"count": folded})
    return folded


def _engine_for(
    conn: Conn,
    model: ChurnModel,
    config: ChurnConfig,
    rows: Sequence[SourcedEvent],
    name: str,
    upto: float | None = None,
) -> ChurnEngine:
    """An engine whose in-memory store holds the batch's customers and every customer due."""
    ids = sorted({r.event.customer_id for r in rows if r.event})
    if upto is None:
        upto = max((r.event.occurred_at.timestamp() for r in rows if r.event), default=model.clock)
    raw = cust_repo.load_states(conn, name, ids) + cust_repo.load_due(conn, name, upto, ids)
    states = (CustomerState.from_json(d) for d in raw)
    store = InMemoryCustomerStore((s, next_due(s, config)) for s in states)
    return ChurnEngine(model, store, config)


def _write_back(conn: Conn, engine: ChurnEngine, name: str) -> None:
    store = engine.store
    assert isinstance(store, InMemoryCustomerStore)
    rows = []
    for cid in sorted(store.dirty):
        state = store.states[cid]
        rows.append((cid, state.home_store, state.to_json(), engine.next_due(state)))
    cust_repo.save_states(conn, name, rows)


def _record_drift(conn: Conn, engine: ChurnEngine, name: str, version: int) -> None:
    for event in engine.drift_events:
        model_repo.add_drift_event(
            conn,
            model=name,
            version=version,
            sample=event.sample,
            clock=datetime.fromtimestamp(event.clock, UTC) if event.clock else None,
            error_before=event.error_before,
            reset=event.reset,
        )
        log.warning("churn drift detected", extra={"sample": event.sample, "reset": event.reset})


def advance_clock(
    conn: Conn, *, config: ChurnConfig, to: datetime, name: str = CHURN_MODEL
) -> BatchResult:
    """Move the model clock to `to` without events, learning labels whose horizon has ended.

    Lets labels resolve while no purchases arrive (the learn task ticks to now minus a grace
    period for late till uploads); an evaluation ticks to the end of its data.
    """
    with conn.transaction():
        got = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"ml:{name}",)
        ).fetchone()
        if not got or not got[0]:
            return BatchResult(0, 0, 0, 0, 0, None, busy=True)
        loaded = load_model(conn, name)
        t = to.timestamp()
        if t <= loaded.model.clock:
            return BatchResult(0, 0, 0, 0, loaded.model.samples_seen, loaded.version)
        before = loaded.model.samples_seen
        engine = _engine_for(conn, loaded.model, config, [], name, upto=t)
        engine.advance(t)
        _write_back(conn, engine, name)
        version = save_model(conn, loaded, name)
        _record_drift(conn, engine, name, version)
    learnt = loaded.model.samples_seen - before
    log.info("churn clock advanced", extra={"to": to.isoformat(), "learnt": learnt})
    return BatchResult(0, 0, 0, 0, loaded.model.samples_seen, version)


def consume_all(
    conn: Conn,
    *,
    config: ChurnConfig,
    new_model: ChurnModel,
    sources: Sequence[EventSource] | None = None,
    limit: int = 5000,
    max_batches: int = 1000,
    name: str = CHURN_MODEL,
) -> list[BatchResult]:
    """Consume batches until the sources are drained (or `max_batches`)."""
    results = []
    for _ in range(max_batches):
        res = consume_batch(
            conn, config=config, new_model=new_model, sources=sources, limit=limit, name=name
        )
        results.append(res)
        if res.busy or res.read == 0:
            break
    return results
