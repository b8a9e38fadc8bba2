"""Scoring use cases: programmes, full rescoring, dry runs, current scores with their
explanation, threshold transitions (logged and emitted as `score.threshold_crossed`) and
`qualify_lead`."""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from pydantic import ValidationError

from cloud.core.domain_events import emit
from cloud.crm.errors import CrmConflictError, CrmInvalidInputError, CrmNotFoundError
from cloud.crm.scoring import repository as repo
from cloud.crm.scoring.compiler import DELETE_COUNTS, rescore_sql
from cloud.crm.scoring.engine import PREDICTIVE_MIN_LABELS
from cloud.crm.scoring.model import ConversionModel, features
from cloud.crm.scoring.rules import ProgrammeConfig
from cloud.crm.scoring.scores import (
    Contribution,
    ProfileState,
    behaviour_reference,
    behaviour_score,
    combined_score,
    crossings,
    explain,
    fit_parts,
    fit_score,
)
from cloud.db.repositories import ml_models

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
TOPIC = "score.threshold_crossed"
MODEL_KIND = "scoring-river"


def model_name(programme: int) -> str:
    """The ml_models row of a programme's predictive model."""
    return f"scoring:{programme}"


def parse_config(raw: dict[str, Any]) -> ProgrammeConfig:
    """A stored config as the model (a stored config that no longer validates is a 409)."""
    try:
        return ProgrammeConfig.model_validate(raw)
    except ValidationError as exc:
        raise CrmConflictError(f"stored programme config is invalid: {exc}") from exc


def get(conn: Conn, programme: int) -> repo.ProgrammeRow:
    """A programme, or 404."""
    row = repo.get_programme(conn, programme)
    if row is None:
        raise CrmNotFoundError(f"scoring programme {programme} does not exist")
    return row


def create(conn: Conn, *, name: str, config: ProgrammeConfig, actor: str) -> repo.ProgrammeRow:
    """Save a programme (its scores are computed by the next rescore)."""
    if repo.programme_by_name(conn, name) is not None:
        raise CrmConflictError(f"a scoring programme named {name!r} exists")
    pid = repo.insert_programme(conn, name=name, config=config.model_dump(mode="json"), by=actor)
    log.info("scoring programme created", extra={"programme": pid, "name": name})
    return get(conn, pid)


def update(conn: Conn, programme: int, *, config: ProgrammeConfig) -> repo.ProgrammeRow:
    """Replace a programme's config; the stored scores lag until rescored (beat or API)."""
    if repo.get_programme(conn, programme, lock=True) is None:
        raise CrmNotFoundError(f"scoring programme {programme} does not exist")
    repo.update_programme(conn, programme, config.model_dump(mode="json"))
    log.info("scoring programme updated", extra={"programme": programme})
    return get(conn, programme)


def delete(conn: Conn, programme: int) -> None:
    """Delete a programme, its scores, history and model."""
    if not repo.delete_programme(conn, programme):
        raise CrmNotFoundError(f"scoring programme {programme} does not exist")
    conn.execute("DELETE FROM ml_models WHERE name = %s", (model_name(programme),))


@dataclass(frozen=True)
class RescoreResult:
    """What a full rescoring did."""

    programme: int
    version: int
    profiles: int
    history_rows: int
    transitions: int


def rescore(
    conn: Conn, programme: int, *, now: datetime | None = None, reason: str = "rescore"
) -> RescoreResult:
    """Recompute every profile's behaviour and fit from all events in SQL (in the caller's
    transaction), log the level changes and emit their domain events."""
    at = now or datetime.now(UTC)
    row = repo.get_programme(conn, programme, lock=True)
    if row is None:
        raise CrmNotFoundError(f"scoring programme {programme} does not exist")
    config = parse_config(row.config)
    conn.execute(DELETE_COUNTS, (programme,))
    rows = conn.execute(
        rescore_sql(config, programme=programme, as_of=at, reason=reason)
    ).fetchall()
    moved = 0
    profiles = hist = 0
    for pid, old, new, c, n_up, n_hist, _ in rows:
        profiles, hist = int(n_up), int(n_hist)
        if pid is None:
            continue
        moved += record_crossings(
            conn, programme, row.name, int(pid), old, new, float(c), reason=reason, at=at,
            config=config,
        )  # fmt: skip
    repo.mark_rescored(conn, programme, row.version)
    log.info(
        "scoring programme rescored",
        extra={"programme": programme, "profiles": profiles, "transitions": moved},
    )
    return RescoreResult(programme, row.version, profiles, hist, moved)


def record_crossings(
    conn: Conn, programme: int, name: str, pid: int, old: str, new: str, score: float, *,
    reason: str, at: datetime, config: ProgrammeConfig,
) -> int:  # fmt: skip
    """Log and emit every threshold crossed from level `old` to `new`; returns how many."""
    done = 0
    for level, direction, threshold in crossings(old, new, config.thresholds):
        why = f"{reason}: combined {score:.2f} {'>=' if direction == 'up' else '<'} {threshold:g}"
        repo.add_transition(
            conn, programme, pid, level=level, direction=direction, score=score,
            threshold=threshold, reason=why, at=at,
        )  # fmt: skip
        emit(
            conn,
            topic=TOPIC,
            subject=f"profile:{pid}",
            payload={
                "profile_id": pid,
                "programme": name,
                "score": score,
                "threshold": threshold,
                "direction": direction,
                "level": level,
            },
        )
        done += 1
    return done


def load_model(conn: Conn, programme: int) -> tuple[ConversionModel, int | None]:
    """The programme's predictive model and its version (a fresh one, None, before any save)."""
    row = ml_models.load(conn, model_name(programme))
    if row is None:
        return ConversionModel(), None
    model = pickle.loads(row.state)  # noqa: S301 - our own table, written only by save_model
    if not isinstance(model, ConversionModel):
        raise CrmConflictError(f"stored model {model_name(programme)} is not a ConversionModel")
    return model, row.version


def save_model(conn: Conn, programme: int, model: ConversionModel, version: int | None) -> int:
    """Save the model as the next version (409 if another process saved since it was loaded)."""
    got = ml_models.save(
        conn,
        name=model_name(programme),
        kind=MODEL_KIND,
        expected_version=version,
        state=pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL),
        samples_seen=model.samples_seen,
        metrics=model.metrics(),
        watermarks={},
        clock=repo.ts(model.clock) if model.clock else None,
    )
    if got is None:
        raise CrmConflictError(f"model {model_name(programme)} moved on; the batch is retried")
    return got


@dataclass(frozen=True)
class ProfileScore:
    """A profile's current score (decayed to `as_of`) with its explanation."""

    programme: str
    profile_id: int
    as_of: datetime
    behaviour: float
    fit: float
    predictive: float | None
    combined: float
    level: str
    contributions: list[Contribution]
    updated_at: datetime | None


def current(
    conn: Conn, programme: int, profile_id: int, *, now: datetime | None = None
) -> ProfileScore:
    """The profile's score now: stored state decayed to now, fit from today's attributes, the
    stored prediction; level is the stored one (moved by the consumer, rescoring and sweeps)."""
    at = now or datetime.now(UTC)
    prog = get(conn, programme)
    config = parse_config(prog.config)
    pid = repo.live_owner(conn, [profile_id]).get(profile_id)
    if pid is None:
        raise CrmNotFoundError(f"profile {profile_id} does not exist")
    attrs = repo.attributes_of(conn, [pid]).get(pid, {})
    stored = repo.scores_of(conn, programme, [pid]).get(pid)
    state = repo.to_state(stored) if stored else ProfileState(pid, at=at.timestamp())
    state.move_to(at.timestamp(), config.half_life_s)
    fits = fit_parts(config, attrs)
    fit = fit_score(config, attrs)
    predictive = stored.predictive if stored else None
    b = behaviour_score(state.raw, config)
    return ProfileScore(
        programme=prog.name,
        profile_id=pid,
        as_of=at,
        behaviour=round(b, 4),
        fit=round(fit, 4),
        predictive=predictive,
        combined=combined_score(config, b, fit, predictive),
        level=stored.level if stored else "none",
        contributions=explain(config, state.by_rule, fits, predictive),
        updated_at=stored.updated_at if stored else None,
    )


@dataclass(frozen=True)
class QualifyResult:
    """qualify_lead's answer."""

    profile_id: int
    programme: str
    score: float
    threshold: float
    qualified: bool
    level: str


def qualify_lead(
    conn: Conn,
    customer: int,
    threshold: float = 70,
    *,
    programme: int | None = None,
    now: datetime | None = None,
) -> QualifyResult:
    """Whether the customer's combined score (now) reaches `threshold` in the programme (the
    only one when not named)."""
    if not 0 <= threshold <= 100:
        raise CrmInvalidInputError("threshold must be between 0 and 100")
    if programme is None:
        progs = repo.list_programmes(conn)
        if len(progs) != 1:
            raise CrmInvalidInputError(f"name the programme: {len(progs)} scoring programmes exist")
        programme = progs[0].id
    s = current(conn, programme, customer, now=now)
    return QualifyResult(
        s.profile_id, s.programme, s.combined, threshold, s.combined >= threshold, s.level
    )


@dataclass(frozen=True)
class DryRunRow:
    """What a config would give one profile now."""

    profile_id: int
    behaviour: float
    fit: float
    predictive: float | None
    combined: float
    level: str
    contributions: list[Contribution]


def dry_run(
    conn: Conn,
    *,
    config: ProgrammeConfig,
    profile_ids: list[int],
    programme: int | None = None,
    now: datetime | None = None,
    max_events: int = 200_000,
) -> tuple[list[DryRunRow], list[int]]:
    """Score these profiles under `config` from all their events, saving nothing; returns the
    rows and the ids that name no profile. The prediction is the programme's model's (if any)."""
    at = (now or datetime.now(UTC)).timestamp()
    owners = repo.live_owner(conn, profile_ids)
    unknown = [p for p in profile_ids if p not in owners]
    live = sorted(set(owners.values()))
    events = repo.events_of(conn, live, limit=max_events)
    attrs = repo.attributes_of(conn, live)
    model = load_model(conn, programme)[0] if programme is not None else None
    out = []
    for pid in live:
        evs = events.get(pid, [])
        by_rule = behaviour_reference(config, evs, at)
        fits = fit_parts(config, attrs.get(pid, {}))
        fit = fit_score(config, attrs.get(pid, {}))
        b = behaviour_score(sum(by_rule.values()), config)
        predictive = None
        if model is not None and model.samples_seen >= PREDICTIVE_MIN_LABELS:
            st = ProfileState(pid)
            for _, t, _, _ in evs:
                st.add(t, config.half_life_s)
            h = config.half_life_s
            st.by_rule = {k: v * 2.0 ** ((at - st.at) / h) for k, v in by_rule.items()}
            predictive = round(100 * model.predict(features(st, at, fit, config.half_life_s))[1], 4)
        c = combined_score(config, b, fit, predictive)
        level = (
            "sql" if c >= config.thresholds.sql else "mql" if c >= config.thresholds.mql else "none"
        )
        out.append(
            DryRunRow(pid, round(b, 4), round(fit, 4), predictive, c, level,
                      explain(config, by_rule, fits, predictive))
        )  # fmt: skip
    return out, unknown
