"""Experiments: design checks, lifecycle, sticky assignment with exposures, and results."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram

from cloud.crm.errors import CrmConflictError, CrmInvalidInputError, CrmNotFoundError
from cloud.crm.experiments import analysis, assignment, repository
from cloud.crm.experiments.repository import Conn, ExperimentRow
from cloud.crm.experiments.schemas import AssignAttributes, Design, Metric

log = logging.getLogger(__name__)

ASSIGNMENTS = Counter(
    "mallpulse_experiment_assignments", "Assign calls by outcome (reason).", ["reason"]
)
ANALYSIS_SECONDS = Histogram(
    "mallpulse_experiment_analysis_seconds",
    "Time to compute an experiment's results.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


#: work_mem of the analysis statements (a local setting of their transaction).
ANALYSIS_WORK_MEM = "64MB"


def _invalid(field: str, message: str) -> CrmInvalidInputError:
    return CrmInvalidInputError(
        f"{field}: {message}", errors=[{"field": field, "message": message}]
    )


def get(conn: Conn, experiment_id: int, *, lock: bool = False) -> ExperimentRow:
    """A live experiment or 404."""
    row = repository.get(conn, experiment_id, lock=lock)
    if row is None:
        raise CrmNotFoundError(f"experiment {experiment_id} does not exist")
    return row


def design_of(row: ExperimentRow) -> Design:
    """The stored design, typed."""
    return Design.model_validate(row.design)


def _check_metric(conn: Conn, metric: Metric, path: str) -> None:
    for sub, measure in metric.measures():
        where = f"{path}.{sub}" if sub else path
        if measure.event is not None and not repository.event_known(conn, measure.event):
            raise _invalid(
                f"{where}.event", f"no event named {measure.event!r} has been seen or planned"
            )


def check_design(conn: Conn, design: Design, prefix: str = "body") -> None:
    """What the schema cannot know: the segment, the events and the automation table exist."""
    if design.segment_id is not None and not repository.segment_exists(conn, design.segment_id):
        raise _invalid(f"{prefix}.segment_id", f"segment {design.segment_id} does not exist")
    _check_metric(conn, design.primary_metric, f"{prefix}.primary_metric")
    for i, metric in enumerate(design.guardrails):
        _check_metric(conn, metric, f"{prefix}.guardrails.{i}")
    if design.source is not None and not repository.table_exists(conn, repository.SPLIT_TABLE):
        raise _invalid(f"{prefix}.source", "the automation feature's split table is not there")


def create(
    conn: Conn, *, key: str, name: str, description: str, design: Design, actor: str
) -> ExperimentRow:
    """Store a draft after checking its design."""
    check_design(conn, design)
    row = repository.insert(
        conn,
        key=key,
        name=name,
        description=description,
        design=design.model_dump(mode="json"),
        actor=actor,
    )
    log.info("experiment created", extra={"experiment_id": row.id, "key": key})
    return row


def update(
    conn: Conn,
    experiment_id: int,
    *,
    name: str | None,
    description: str | None,
    design: Design | None,
) -> ExperimentRow:
    """Rename or describe; a new design only while a draft."""
    row = get(conn, experiment_id, lock=True)
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name
    if description is not None:
        fields["description"] = description
    if design is not None:
        if row.status != "draft":
            raise CrmConflictError("the design of a started experiment cannot change")
        check_design(conn, design, "body.design")
        fields["design"] = design.model_dump(mode="json")
    if fields:
        repository.update(conn, experiment_id, **fields)
    return get(conn, experiment_id)


def archive(conn: Conn, experiment_id: int) -> None:
    """Hide a draft or stopped experiment (a running one is stopped first)."""
    row = get(conn, experiment_id, lock=True)
    if row.status == "running":
        raise CrmConflictError("stop the experiment before archiving it")
    repository.update(conn, experiment_id, archived_at=datetime.now(UTC))


def start(conn: Conn, experiment_id: int) -> ExperimentRow:
    """Draft -> running; a namespace range overlapping a running experiment's is a 409."""
    row = get(conn, experiment_id, lock=True)
    if row.status != "draft":
        raise CrmConflictError(f"only a draft can start; this one is {row.status}")
    design = design_of(row)
    ns = design.namespace
    if ns is not None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('experiments-namespace'))")
        for other, lo, hi in repository.running_in_namespace(conn, ns.name, experiment_id):
            if lo < ns.end and ns.start < hi:
                raise CrmConflictError(
                    f"namespace {ns.name!r} [{ns.start}, {ns.end}) overlaps"
                    f" running experiment {other} [{lo}, {hi})"
                )
    repository.update(conn, experiment_id, status="running", started_at=datetime.now(UTC))
    return get(conn, experiment_id)


def stop(conn: Conn, experiment_id: int) -> ExperimentRow:
    """Running -> stopped (assignments stay; results stay readable)."""
    row = get(conn, experiment_id, lock=True)
    if row.status != "running":
        raise CrmConflictError(f"only a running experiment can stop; this one is {row.status}")
    repository.update(conn, experiment_id, status="stopped", stopped_at=datetime.now(UTC))
    return get(conn, experiment_id)


def sdk_design(row: ExperimentRow) -> assignment.Design:
    """The assignment parameters (as a GrowthBook SDK would hold them)."""
    d = design_of(row)
    ns = (d.namespace.name, d.namespace.start, d.namespace.end) if d.namespace else None
    return assignment.Design(
        key=row.key,
        seed=d.seed or row.key,
        hash_version=d.hash_version,
        weights=[v.weight for v in d.variants],
        coverage=d.coverage,
        namespace=ns,
        holdout=d.holdout,
    )


@dataclass(frozen=True)
class Assigned:
    """The answer of `assign`."""

    variant: int | None
    variant_key: str | None
    in_experiment: bool
    reason: str
    bucket: float | None


def _stratum(conn: Conn, design: Design, profile: dict[str, Any], attrs: AssignAttributes) -> str:
    by = design.stratify_by
    assert by is not None
    given = attrs.store_id if by == "store_id" else attrs.tier
    value = given if given is not None else profile.get(by)
    return str(value) if value is not None else "(none)"


def assign(conn: Conn, experiment_id: int, profile_id: int, attrs: AssignAttributes) -> Assigned:
    """Sticky assignment: the stored variant, else targeting, namespace, coverage, holdout and
    the hash (or the stratum's permuted block); a first assignment writes the exposure."""
    row = get(conn, experiment_id)
    design = design_of(row)
    keys = [v.key for v in design.variants]
    if row.status != "running":
        raise CrmConflictError(f"the experiment is {row.status}, not running")
    if design.source is not None:
        raise CrmConflictError("this experiment is assigned by its automation workflow")
    stored = repository.assignment(conn, experiment_id, profile_id)
    if stored is not None:
        return _sticky(stored.variant, keys)
    profile = repository.profile_attributes(conn, profile_id)
    if profile is None:
        raise _invalid("body.profile_id", f"profile {profile_id} does not exist")
    if design.segment_id is not None and not repository.is_member(
        conn, design.segment_id, profile_id
    ):
        return _out("targeting", None)
    decision = assignment.decide(sdk_design(row), str(profile_id))
    if decision.reason not in ("hashed", "holdout"):
        return _out(decision.reason, decision.bucket)
    stratum, variant, reason = None, decision.variant, decision.reason
    if design.stratify_by is not None and variant is not None:
        stratum = _stratum(conn, design, profile, attrs)
        arrival = repository.next_arrival(conn, experiment_id, stratum)
        variant = assignment.stratified_variant(sdk_design(row), stratum, arrival)
        reason = "stratified"
    now = datetime.now(UTC)
    if not repository.store_assignment(conn, experiment_id, profile_id, variant, stratum, now):
        again = repository.assignment(conn, experiment_id, profile_id)
        assert again is not None
        return _sticky(again.variant, keys)
    if variant is not None:
        repository.insert_exposure(
            conn,
            experiment_id=experiment_id,
            key=row.key,
            profile_id=profile_id,
            variant=variant,
            variant_key=keys[variant],
            at=now,
        )
    ASSIGNMENTS.labels(reason).inc()
    return Assigned(
        variant,
        keys[variant] if variant is not None else None,
        variant is not None,
        reason,
        decision.bucket,
    )


def _sticky(variant: int | None, keys: list[str]) -> Assigned:
    ASSIGNMENTS.labels("sticky").inc()
    if variant is None:
        return Assigned(None, None, False, "holdout", None)
    return Assigned(variant, keys[variant], True, "sticky", None)


def _out(reason: str, bucket: float | None) -> Assigned:
    ASSIGNMENTS.labels(reason).inc()
    return Assigned(None, None, False, reason, bucket)


def results(conn: Conn, experiment_id: int) -> analysis.Results:
    """Live results from the stored data; no exposures yet is a 422."""
    with conn.transaction():
        # The per-customer aggregation of millions of exposures spills to disk at the default
        # 4 MB; this is local to the transaction.
        conn.execute("SELECT set_config('work_mem', %s, true)", (ANALYSIS_WORK_MEM,))
        return _results(conn, experiment_id)


def _results(conn: Conn, experiment_id: int) -> analysis.Results:
    started = time.perf_counter()
    row = get(conn, experiment_id)
    design = design_of(row)
    keys = [v.key for v in design.variants]
    if design.source is not None and not repository.table_exists(conn, repository.SPLIT_TABLE):
        raise _invalid("design.source", "the automation feature's split table is not there")
    sizes, holdout = repository.arm_sizes(conn, experiment_id, design.source, keys)
    sizes = {i: sizes.get(i, 0) for i in range(len(keys))}
    if sum(sizes.values()) == 0:
        raise _invalid("exposures", "the experiment has no exposures yet; nothing to analyse")
    exposures, srm = analysis.exposures(design, sizes)
    metrics = [(design.primary_metric, "primary")] + [(g, "guardrail") for g in design.guardrails]
    sums = repository.metric_sums(
        conn, experiment_id, [m for m, _ in metrics], design.source, keys, sizes
    )
    out = [
        analysis.metric_result(metric, role, design, arms)  # type: ignore[arg-type]
        for (metric, role), arms in zip(metrics, sums, strict=True)
    ]
    analysis.correct(out, design.analysis)
    ANALYSIS_SECONDS.observe(time.perf_counter() - started)
    a = design.analysis
    return analysis.Results(
        experiment_id=experiment_id,
        engine=a.engine,
        sequential=a.sequential,
        alpha=a.alpha,
        correction=a.correction,
        exposures=exposures,
        holdout=holdout,
        srm=srm,
        metrics=out,
    )


def snapshot_all(conn: Conn, *, now: datetime | None = None) -> int:
    """Store today's results of every running experiment (one transaction each); returns how
    many were stored. An experiment without exposures yet is skipped."""
    at = now or datetime.now(UTC)
    done = 0
    for experiment_id in repository.running_ids(conn):
        with conn.transaction():
            try:
                res = results(conn, experiment_id)
            except CrmInvalidInputError as exc:
                log.info("no snapshot", extra={"experiment_id": experiment_id, "why": exc.detail})
                continue
            repository.save_snapshot(
                conn, experiment_id, at.date(), at, res.model_dump(mode="json")
            )
            if res.srm.flagged:
                log.warning(
                    "sample ratio mismatch",
                    extra={"experiment_id": experiment_id, "p_value": res.srm.p_value},
                )
            done += 1
    return done
