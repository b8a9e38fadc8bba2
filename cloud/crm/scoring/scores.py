"""Pure score arithmetic: behaviour state with exponential decay, fit, the combined 0-100 score,
MQL/SQL levels with hysteresis, and the explanation of the top contributions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from cloud.crm.scoring.rules import (
    ONCE_DAY,
    BehaviourRule,
    ProgrammeConfig,
    Thresholds,
    award,
    filter_matches,
    rule_matches,
    utc_day,
)

DAY = 86400.0
LEVELS = ("none", "mql", "sql")
#: Half-lives of the activity counts the predictive model reads.
ACTIVITY_HALF_LIVES = {"ew7": 7 * DAY, "ew30": 30 * DAY}


@dataclass
class ProfileState:
    """A profile's behaviour in one programme, every decayed quantity as of `at`."""

    profile_id: int
    at: float = 0.0
    by_rule: dict[str, float] = field(default_factory=dict)
    ew7: float = 0.0
    ew30: float = 0.0
    events: int = 0
    first_seen: float | None = None
    last_event: float | None = None
    converted_at: float | None = None
    snapshot_at: float | None = None
    idle: int = 0

    @property
    def raw(self) -> float:
        """The decayed point sum as of `at`."""
        return sum(self.by_rule.values())

    def move_to(self, t: float, half_life_s: float) -> None:
        """Decay everything to time t (never backwards)."""
        if t <= self.at:
            return
        dt = t - self.at
        f = 2.0 ** (-dt / half_life_s)
        self.by_rule = {k: v * f for k, v in self.by_rule.items()}
        self.ew7 *= 2.0 ** (-dt / ACTIVITY_HALF_LIVES["ew7"])
        self.ew30 *= 2.0 ** (-dt / ACTIVITY_HALF_LIVES["ew30"])
        self.at = t

    def add(self, t: float, half_life_s: float, awards: Iterable[tuple[str, float]] = ()) -> None:
        """Count one event at t with its rule awards (key, points)."""
        if self.first_seen is None and not self.by_rule:
            self.at = max(self.at, t)
        self.move_to(t, half_life_s)
        age = max(0.0, self.at - t)  # an event older than `at` is added already decayed
        for key, points in awards:
            self.by_rule[key] = self.by_rule.get(key, 0.0) + points * 2.0 ** (-age / half_life_s)
        self.ew7 += 2.0 ** (-age / ACTIVITY_HALF_LIVES["ew7"])
        self.ew30 += 2.0 ** (-age / ACTIVITY_HALF_LIVES["ew30"])
        self.events += 1
        self.first_seen = t if self.first_seen is None else min(self.first_seen, t)
        self.last_event = t if self.last_event is None else max(self.last_event, t)


def counter_day(rule: BehaviourRule, t: float) -> int:
    """The counter day of a hit: the UTC day, or ONCE_DAY for a once-only rule."""
    return ONCE_DAY if rule.repeat == "once" else utc_day(t)


@dataclass(frozen=True)
class Hit:
    """Points one event earned from one rule."""

    key: str
    points: float


def score_event(
    rules: Iterable[BehaviourRule],
    counts: dict[tuple[str, int], float],
    event: str | None,
    props: Mapping[str, JsonValue],
    t: float,
) -> list[Hit]:
    """The awards of one event (updating `counts`: (rule key, counter day) -> points used)."""
    hits = []
    for rule in rules:
        if not rule_matches(rule, event, props):
            continue
        slot = (rule.key, counter_day(rule, t))
        got = award(rule, counts.get(slot, 0.0))
        if got:
            counts[slot] = counts.get(slot, 0.0) + abs(got)
            hits.append(Hit(rule.key, got))
    return hits


def behaviour_reference(
    config: ProgrammeConfig,
    events: Iterable[tuple[int, float, str | None, Mapping[str, JsonValue]]],
    as_of: float,
) -> dict[str, float]:
    """Brute force: (id, time, name, properties) events of one profile in (time, id) order ->
    decayed points per rule as of `as_of` (the meaning the SQL rescoring must reproduce)."""
    counts: dict[tuple[str, int], float] = {}
    out: dict[str, float] = {}
    h = config.half_life_s
    for _, t, name, props in sorted(events, key=lambda e: (e[1], e[0])):
        for hit in score_event(config.behaviour_rules, counts, name, props, t):
            out[hit.key] = out.get(hit.key, 0.0) + hit.points * 2.0 ** (-max(0.0, as_of - t) / h)
    return out


def behaviour_score(raw: float, config: ProgrammeConfig) -> float:
    """Decayed points -> 0-100 (`behaviour_max_points` or more is 100; negative is 0)."""
    return min(100.0, max(0.0, 100.0 * raw / config.behaviour_max_points))


def fit_parts(config: ProgrammeConfig, attributes: Mapping[str, JsonValue]) -> dict[str, float]:
    """Fit contributions: 'completeness' and each matching fit rule's points."""
    fields = config.fit.completeness_fields
    filled = sum(1 for f in fields if attributes.get(f) not in (None, "", [], {}))
    parts = {"completeness": config.fit.completeness_points * filled / len(fields) if fields else 0}
    for rule in config.fit.rules:
        if filter_matches(rule.filter, attributes):
            parts[rule.key] = rule.points
    return parts


def fit_score(config: ProgrammeConfig, attributes: Mapping[str, JsonValue]) -> float:
    """Profile fit, 0-100."""
    return min(100.0, max(0.0, sum(fit_parts(config, attributes).values())))


def combined_score(
    config: ProgrammeConfig, behaviour: float, fit: float, predictive: float | None
) -> float:
    """Weighted mean of the 0-100 parts (a missing prediction drops out of the weights)."""
    w = config.weights
    parts = [(w.behaviour, behaviour), (w.fit, fit)]
    if predictive is not None:
        parts.append((w.predictive, predictive))
    total = sum(wt for wt, _ in parts)
    if total <= 0:
        return 0.0
    return round(min(100.0, max(0.0, sum(wt * v for wt, v in parts) / total)), 4)


def next_level(current: str, score: float, th: Thresholds) -> str:
    """The level after a score change: entered at the threshold, left `hysteresis` below it."""
    if score >= th.sql or (current == "sql" and score >= th.sql - th.hysteresis):
        return "sql"
    if score >= th.mql or (current in ("mql", "sql") and score >= th.mql - th.hysteresis):
        return "mql"
    return "none"


def crossings(old: str, new: str, th: Thresholds) -> list[tuple[str, str, float]]:
    """(level, direction, threshold) of every threshold crossed going from `old` to `new`, in
    order (none -> sql crosses mql then sql; down uses the hysteresis-lowered thresholds)."""
    a, b = LEVELS.index(old), LEVELS.index(new)
    limit = {"mql": th.mql, "sql": th.sql}
    if b > a:
        return [(lv, "up", limit[lv]) for lv in LEVELS[a + 1 : b + 1]]
    return [(lv, "down", limit[lv] - th.hysteresis) for lv in reversed(LEVELS[b + 1 : a + 1])]


@dataclass(frozen=True)
class Contribution:
    """How many points of the combined score one item gives."""

    part: str  # behaviour | fit | predictive
    key: str
    points: float


def explain(
    config: ProgrammeConfig,
    by_rule: Mapping[str, float],
    fit: Mapping[str, float],
    predictive: float | None,
    top: int = 5,
) -> list[Contribution]:
    """The largest contributions (by absolute size) to the combined score, in its points."""
    w = config.weights
    total = w.behaviour + w.fit + (w.predictive if predictive is not None else 0.0)
    if total <= 0:
        return []
    out = [
        Contribution("behaviour", k, w.behaviour / total * 100.0 * v / config.behaviour_max_points)
        for k, v in by_rule.items()
    ]
    out += [Contribution("fit", k, w.fit / total * v) for k, v in fit.items()]
    if predictive is not None:
        out.append(Contribution("predictive", "p_convert", w.predictive / total * predictive))
    out = [c for c in out if math.isfinite(c.points) and abs(c.points) >= 0.005]
    out.sort(key=lambda c: (-abs(c.points), c.part, c.key))
    return [Contribution(c.part, c.key, round(c.points, 2)) for c in out[:top]]
