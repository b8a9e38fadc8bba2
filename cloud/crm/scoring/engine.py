"""The in-memory scoring loop: events -> rule awards with caps and decay -> fit, predictive and
combined scores; conversions label the predictive model's snapshots, learnt after the horizon.

Conversion: a profile observed (snapshotted) at time s converts if it makes a conversion (a
configured event, or a POS sale) in (s, s + horizon]. A snapshot is taken at a profile's event
when none was taken in the last `snapshot_every_days`; it stores the features and the
predictions made then. A conversion marks the pending snapshots it falls within; a snapshot is
learnt only when the stream clock (the latest event time seen) passes s + horizon, as the churn
engine does, so early positives do not bias the model. The Postgres consumer (`consumer.py`)
loads the state of the profiles a batch touches into this engine and writes it back.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from cloud.crm.scoring.model import ConversionModel, features
from cloud.crm.scoring.rules import ProgrammeConfig
from cloud.crm.scoring.scores import (
    DAY,
    Hit,
    ProfileState,
    behaviour_score,
    combined_score,
    score_event,
)

#: Labels learnt before the predictive part enters the combined score.
PREDICTIVE_MIN_LABELS = 50


@dataclass
class Snapshot:
    """A profile's features and the predictions made at `at`, waiting for the label."""

    profile_id: int
    at: float
    x: dict[str, float]
    p_raw: float
    p_cal: float
    behaviour: float
    combined: float
    seen: int
    converted: bool = False


@dataclass(frozen=True)
class Score:
    """A profile's scores (0-100) after an event."""

    profile_id: int
    behaviour: float
    fit: float
    predictive: float | None
    combined: float
    hits: tuple[Hit, ...] = ()


@dataclass
class ScoringEngine:
    """One programme's engine over the profile states it holds."""

    config: ProgrammeConfig
    model: ConversionModel
    states: dict[int, ProfileState] = field(default_factory=dict)
    counts: dict[int, dict[tuple[str, int], float]] = field(default_factory=dict)
    pending: dict[int, list[Snapshot]] = field(default_factory=dict)
    fits: dict[int, float] = field(default_factory=dict)
    learnt: list[Snapshot] = field(default_factory=list)
    keep_learnt: bool = False
    _heap: list[tuple[float, int, float]] = field(default_factory=list)
    _idle: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._conversions = frozenset(self.config.predictive.conversion_events)
        self._horizon = self.config.predictive.horizon_days * DAY
        self._every = self.config.predictive.snapshot_every_days * DAY
        for pid, snaps in self.pending.items():
            for s in snaps:
                heapq.heappush(self._heap, (s.at + self._horizon, pid, s.at))
        for st in self.states.values():
            self._plan_idle(st)

    def state(self, pid: int) -> ProfileState:
        """The profile's state (created empty when unknown)."""
        st = self.states.get(pid)
        if st is None:
            st = self.states[pid] = ProfileState(pid)
        return st

    def apply_event(
        self, pid: int, name: str | None, props: Mapping[str, JsonValue], t: float
    ) -> Score:
        """Score one event of profile `pid` at POSIX time t."""
        self.advance(t)
        st = self.state(pid)
        hits = score_event(
            self.config.behaviour_rules, self.counts.setdefault(pid, {}), name, props, t
        )
        h = self.config.half_life_s
        st.add(t, h, [(hit.key, hit.points) for hit in hits])
        if name is not None and name in self._conversions:
            self.apply_conversion(pid, t)
        score = self.score(pid, t)
        if st.snapshot_at is None or t - st.snapshot_at >= self._every:
            st.idle = 0
            self._snapshot(st, t, score)
        return Score(pid, score.behaviour, score.fit, score.predictive, score.combined, tuple(hits))

    def apply_conversion(self, pid: int, t: float) -> None:
        """A conversion at t labels the profile's snapshots it falls within."""
        self.advance(t)
        st = self.state(pid)
        st.converted_at = t if st.converted_at is None else max(st.converted_at, t)
        for snap in self.pending.get(pid, ()):
            if snap.at < t <= snap.at + self._horizon:
                snap.converted = True

    def score(self, pid: int, t: float) -> Score:
        """The profile's scores as of t (no learning)."""
        st = self.state(pid)
        fit = self.fits.get(pid, 0.0)
        h = self.config.half_life_s
        raw = st.raw * 2.0 ** (-max(0.0, t - st.at) / h)
        behaviour = behaviour_score(raw, self.config)
        predictive = None
        if self.model.samples_seen >= PREDICTIVE_MIN_LABELS:
            _, p_cal = self.model.predict(features(st, t, fit, h))
            predictive = round(100.0 * p_cal, 4)
        combined = combined_score(self.config, behaviour, fit, predictive)
        return Score(pid, round(behaviour, 4), round(fit, 4), predictive, combined)

    def _snapshot(self, st: ProfileState, t: float, score: Score) -> None:
        x = features(st, t, self.fits.get(st.profile_id, 0.0), self.config.half_life_s)
        p_raw, p_cal = self.model.predict(x)
        snap = Snapshot(
            st.profile_id, t, x, p_raw, p_cal, score.behaviour, score.combined,
            self.model.samples_seen,
        )  # fmt: skip
        self.pending.setdefault(st.profile_id, []).append(snap)
        heapq.heappush(self._heap, (t + self._horizon, st.profile_id, t))
        st.snapshot_at = t
        self._plan_idle(st)

    def _plan_idle(self, st: ProfileState) -> None:
        if st.snapshot_at is not None and st.idle < self.config.predictive.max_idle_snapshots:
            heapq.heappush(self._idle, (st.snapshot_at + self._every, st.profile_id))

    def _take_idle(self, t: float) -> None:
        """Idle snapshots due before t: a quiet profile is observed again every
        `snapshot_every_days` (up to `max_idle_snapshots`), so the model sees recency grow."""
        while self._idle and self._idle[0][0] < t:
            due, pid = heapq.heappop(self._idle)
            st = self.states.get(pid)
            if st is None or st.snapshot_at is None or st.snapshot_at + self._every != due:
                continue  # stale: the profile was snapshotted since
            st.idle += 1
            self._snapshot(st, due, self.score(pid, due))

    def advance(self, t: float) -> int:
        """Move the stream clock to t; learn the snapshots whose horizon ended; returns how many."""
        if t <= self.model.clock:
            return 0
        self.model.clock = t
        self._take_idle(t)
        done = 0
        while self._heap and self._heap[0][0] < t:
            _, pid, at = heapq.heappop(self._heap)
            snaps = self.pending.get(pid, [])
            for i, snap in enumerate(snaps):
                if snap.at == at:
                    del snaps[i]
                    self._learn(snap)
                    done += 1
                    break
            if not snaps:
                self.pending.pop(pid, None)
        return done

    def _learn(self, snap: Snapshot) -> None:
        self.model.learn(
            snap.x, snap.converted, snap.p_raw, snap.p_cal, (snap.behaviour, snap.combined)
        )
        if self.keep_learnt:
            self.learnt.append(snap)
