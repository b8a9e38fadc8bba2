"""Undo a merge: restore exactly the people that the records give without the link that merged
them.

A merge is caused by bridging records (`crm_merges.bridge_record_ids`): a new record, or a known
record that gained an identifier, that carries identifiers of both people. Undo resolves the
neighbourhood again without those records; the records that then group with the absorbed side
go back to the absorbed profile, and each bridging record keeps the side it is on while its
identifiers that reach the other side stop linking it (`crm_identifiers.unlinked_by_merge`). No
identifier is blocked everywhere, so a person whose own records share the bridging e-mail stays
one person.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from cloud.crm.errors import CrmConflictError, CrmNotFoundError
from cloud.crm.identity.resolver import resolve
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.identity.service import expand_region, resolve_region
from cloud.db.repositories import crm_identity as repo

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
Key = tuple[str, str]
Edge = tuple[int, str, str]


def unmerge(
    conn: Conn, *, merge_id: int, actor: str, rules: IdentityRules | None = None
) -> tuple[int, int]:
    """Undo a merge: the absorbed profile comes back with its records (and their transactions
    and touchpoints); the bridging records stop linking the two sides. Returns (survivor id,
    restored id). CrmConflictError, with nothing written, when the two cannot be told apart."""
    rules = rules or IdentityRules()
    repo.lock_identity(conn)
    merge = repo.get_merge(conn, merge_id)
    if merge is None:
        raise CrmNotFoundError(f"merge {merge_id} does not exist")
    if merge["undone_at"] is not None:
        raise CrmConflictError(f"merge {merge_id} was already undone at {merge['undone_at']}")
    survivor, absorbed = int(merge["survivor_id"]), int(merge["absorbed_id"])
    moved = [int(r) for r in merge["record_ids"]]
    live = repo.resolve_profile_id(conn, survivor) or survivor  # merged on since, perhaps
    held = repo.record_ids_of_profile(conn, live)
    stay = [r for r in held if r not in set(moved)]
    if not stay or not set(moved) <= set(held):
        raise CrmConflictError(f"merge {merge_id} cannot be undone: its records have moved since")
    plan = _plan(conn, merge, moved, held, rules)
    if plan.cuts:
        repo.unlink_identifiers(conn, plan.cuts, merge_id=merge_id)
    if plan.blocks:
        repo.block_identifiers(conn, plan.blocks, reason=f"unmerge of merge {merge_id} by {actor}")
    repo.revive_profile(conn, absorbed)
    repo.restore_redirects(conn, absorbed, live)
    repo.move_records(conn, sorted(plan.back), absorbed)
    repo.mark_merge_undone(conn, merge_id, actor)
    every = repo.identifiers_of_records(conn, held)
    resolve_region(conn, sorted({k for ks in every.values() for k in ks}), rules=rules)
    log.info(
        "merge undone",
        extra={"merge_id": merge_id, "unlinked": len(plan.cuts), "blocked": len(plan.blocks)},
    )
    return survivor, absorbed


@dataclass
class UndoPlan:
    """What undoing a merge changes: the records going back to the absorbed profile, the
    (record, kind, value) links cut, and the (weak) identifiers blocked everywhere."""

    back: set[int]
    cuts: list[Edge] = field(default_factory=list)
    blocks: set[Key] = field(default_factory=set)


def _plan(
    conn: Conn, merge: dict[str, Any], moved: list[int], held: list[int], rules: IdentityRules
) -> UndoPlan:
    """Resolve the neighbourhood without the bridging records: the groups holding the absorbed
    records go back; each bridge stops reaching the side it does not stay on. If weak
    identifiers would still attach the sides (an anonymous group made unambiguous by the
    bridge), those identifiers are blocked. CrmConflictError when the sides stay linked."""
    every = repo.identifiers_of_records(conn, held)
    region = expand_region(
        conn, sorted({k for ks in every.values() for k in ks}), rules.max_region_records
    )
    links = repo.identifiers_of_records(conn, list(region), linking_only=True)
    blocked = repo.blocked_identifiers(conn, {k for ks in links.values() for k in ks})
    stay = [r for r in held if r not in set(moved)]
    bridges = _bridges(merge, moved, stay, links)
    groups = resolve([(r, ks) for r, ks in links.items() if r not in bridges], rules, blocked)
    back = {r for g in groups if set(g) & set(moved) for r in g}
    if not (set(held) - back - set(bridges)) or not back <= set(held):
        raise CrmConflictError(
            f"merge {merge['id']} cannot be undone: records other than the one that merged "
            "them link the two people too"
        )
    back |= {b for b in bridges if b in set(moved)}  # a bridge that was theirs stays theirs
    plan = UndoPlan(back=back, cuts=_cuts(links, bridges, back))
    cut = {(r, k, v) for r, k, v in plan.cuts}
    kept = {r: [(k, v) for k, v in ks if (r, k, v) not in cut] for r, ks in links.items()}
    if not _apart(kept, back, rules, blocked):
        plan.blocks = _keys(kept, back) & _keys(kept, [r for r in kept if r not in back])
        strong = {k.value for k in rules.strong_kinds}
        if any(k in strong for k, _ in plan.blocks) or not _apart(
            kept, back, rules, blocked | plan.blocks
        ):
            raise CrmConflictError(f"merge {merge['id']} cannot be undone: the sides stay linked")
    return plan


def _apart(
    links: dict[int, list[Key]], back: set[int], rules: IdentityRules, blocked: set[Key]
) -> bool:
    """Whether resolution keeps `back` in groups of their own."""
    groups = resolve(list(links.items()), rules, blocked)
    return all(set(g) <= back or not set(g) & back for g in groups)


def _bridges(
    merge: dict[str, Any], moved: list[int], stay: list[int], links: dict[int, list[Key]]
) -> list[int]:
    """The records that bridged the two sides: those logged with the merge that carry linking
    identifiers of both sides (all logged ones if none does). Merges logged before the log
    existed: the records holding an identifier of the other side, on the side with fewer."""
    logged = [int(r) for r in merge.get("bridge_record_ids") or [] if int(r) in links]
    if logged:
        left = _keys(links, [r for r in moved if r not in logged])
        right = _keys(links, [r for r in stay if r not in logged])
        both = [r for r in logged if set(links[r]) & left and set(links[r]) & right]
        return both or logged
    left, right = _keys(links, moved), _keys(links, stay)
    on_left = [r for r in moved if set(links[r]) & right]
    on_right = [r for r in stay if set(links[r]) & left]
    return on_right if len(on_right) <= len(on_left) else on_left


def _cuts(links: dict[int, list[Key]], bridges: list[int], back: set[int]) -> list[Edge]:
    """Identifiers of each bridging record that reach the side it does not stay on."""
    absorbed_keys = _keys(links, [r for r in back if r not in bridges])
    survivor_keys = _keys(links, [r for r in links if r not in back and r not in bridges])
    cuts: list[Edge] = []
    for b in bridges:
        other = survivor_keys if b in back else absorbed_keys
        cuts += [(b, k, v) for k, v in links[b] if (k, v) in other]
    return cuts


def _keys(links: dict[int, list[Key]], records: Sequence[int] | set[int]) -> set[Key]:
    return {k for r in records for k in links.get(r, [])}
