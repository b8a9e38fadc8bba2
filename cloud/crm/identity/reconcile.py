"""Turn a fresh partition of records into profile ids: who survives, who is absorbed, who splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class GroupPlan:
    """The profile a group of records ends up in."""

    record_ids: list[int]
    profile_id: int | None  # None: a brand-new profile is needed
    absorbed: list[int] = field(default_factory=list)  # profiles whose records all moved here
    moved_from: dict[int, list[int]] = field(default_factory=dict)  # profile -> records moved


def plan_profiles(
    groups: Sequence[Sequence[int]], current: Mapping[int, int | None]
) -> list[GroupPlan]:
    """Assign each group a surviving profile: the lowest current profile id not taken yet.

    `current` maps record id -> its profile id now (None for a record not stored yet). A profile
    whose records all land in another group's survivor is absorbed (merged); a profile whose
    records spread over several groups keeps its id in the first and the others split off.
    """
    taken: set[int] = set()
    plans: list[GroupPlan] = []
    for group in sorted(groups, key=lambda g: min(g)):
        candidates = sorted({p for r in group if (p := current.get(r)) is not None})
        survivor = next((p for p in candidates if p not in taken), None)
        if survivor is not None:
            taken.add(survivor)
        plan = GroupPlan(record_ids=sorted(group), profile_id=survivor)
        for r in group:
            p = current.get(r)
            if p is not None and p != survivor:
                plan.moved_from.setdefault(p, []).append(r)
        plans.append(plan)
    remaining = {p for plan in plans if plan.profile_id is not None for p in [plan.profile_id]}
    holders: dict[int, int] = {}
    for plan in plans:
        for r in plan.record_ids:
            p = current.get(r)
            if p is not None:
                holders[p] = holders.get(p, 0) + 1
    for plan in plans:
        for p, moved in plan.moved_from.items():
            if p not in remaining and len(moved) == holders[p]:
                plan.absorbed.append(p)
    return plans
