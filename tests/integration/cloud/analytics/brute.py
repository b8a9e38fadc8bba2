"""Brute-force funnels, straight from the definitions in docs/analytics.md (no SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cloud.crm.analytics.schemas import FunnelQuery
from tests.integration.cloud.analytics.world import Ev, PersonKey, World, matches, text_of


@dataclass(frozen=True)
class Outcome:
    """How far one person went, their shortest conversion (seconds) and breakdown value."""

    depth: int
    ttc: float | None
    bval: str | None


def funnel(world: World, q: FunnelQuery) -> dict[PersonKey, Outcome]:
    """Every person who entered the funnel of `q`, by trying every entry event."""
    out = {}
    for person, evs in world.by_person().items():
        evs = [e for e in evs if q.start <= e.t < q.end + timedelta(seconds=q.window_seconds)]
        found = _strict(q, evs) if q.order == "strict" else _any(q, evs)
        if found is not None:
            out[person] = found
    return out


def _bval(q: FunnelQuery, evs: list[Ev]) -> str | None:
    firsts = [e for e in evs if e.t < q.end and matches(e, q.steps[0])]
    if not firsts or q.breakdown is None:
        return None
    return text_of(firsts[0].props.get(q.breakdown))


def _strict(q: FunnelQuery, evs: list[Ev]) -> Outcome | None:
    w = timedelta(seconds=q.window_seconds)
    best, ttc = 0, None
    for i, anchor in enumerate(evs):
        if anchor.t >= q.end or not matches(anchor, q.steps[0]):
            continue
        depth, pos = 1, i
        for step in q.steps[1:]:
            nxt = next(
                (j for j in range(pos + 1, len(evs))
                 if matches(evs[j], step) and evs[j].t - anchor.t <= w),
                None,
            )  # fmt: skip
            if nxt is None:
                break
            depth, pos = depth + 1, nxt
        best = max(best, depth)
        if depth == len(q.steps):
            span = (evs[pos].t - anchor.t).total_seconds()
            ttc = span if ttc is None else min(ttc, span)
    return Outcome(best, ttc, _bval(q, evs)) if best else None


def _any(q: FunnelQuery, evs: list[Ev]) -> Outcome | None:
    w = timedelta(seconds=q.window_seconds)
    best, ttc = 0, None
    for i, row in enumerate(evs):
        if row.t >= q.end or not any(matches(row, s) for s in q.steps):
            continue
        firsts = [next((e.t for e in evs[i:] if matches(e, s)), None) for s in q.steps]
        depth = 0
        for f in firsts:
            if f is None or f - row.t > w:
                break
            depth += 1
        best = max(best, depth)
        if depth == len(q.steps):
            span = (max(f for f in firsts if f is not None) - row.t).total_seconds()
            ttc = span if ttc is None else min(ttc, span)
    return Outcome(best, ttc, _bval(q, evs)) if best else None
