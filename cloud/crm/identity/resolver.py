"""Deterministic identity resolution: connected components over a graph of identifiers.

Pure and order-independent: the result depends only on the set of records. Steps:
1. records sharing a strong, unblocked identifier are one person (connected components);
2. anonymous components (no strong identifier at all) that share a weak identifier are joined;
3. an anonymous group that touches exactly one identified person through weak identifiers joins
   that person; touching two or more (a household tablet), it stays on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cloud.crm.identity.rules import IdentityRules

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class IdentityGraph:
    """Interned edges: edge i links record `rec[i]` to identifier `ident[i]`."""

    n_records: int
    rec: IntArray
    ident: IntArray
    strong: BoolArray  # per identifier: a strong kind
    blocked: BoolArray  # per identifier: no longer links records


def _components(n_left: int, n_right: int, left: IntArray, right: IntArray) -> IntArray:
    """Component label of each left node in the bipartite graph left--right."""
    n = n_left + n_right
    data = np.ones(len(left), dtype=np.int8)
    graph = coo_matrix((data, (left, right + n_left)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    out: IntArray = labels[:n_left].astype(np.int64)
    return out


def resolve_graph(g: IdentityGraph) -> IntArray:
    """A person label per record (labels are arbitrary integers; equal label = same person)."""
    n_ident = len(g.strong)
    edge_strong = g.strong[g.ident]
    linking = edge_strong & ~g.blocked[g.ident]
    comp = _components(g.n_records, n_ident, g.rec[linking], g.ident[linking])
    n_comp = int(comp.max()) + 1 if g.n_records else 0
    identified = np.zeros(n_comp, dtype=bool)
    identified[comp[g.rec[edge_strong]]] = True

    weak = ~edge_strong & ~g.blocked[g.ident]
    w_comp, w_ident = comp[g.rec[weak]], g.ident[weak]
    anon = ~identified[w_comp]
    # Anonymous components joined through shared weak identifiers (safe: nobody is identified).
    sup = _components(n_comp, n_ident, w_comp[anon], w_ident[anon])
    sup_of_ident = np.full(n_ident, -1, dtype=np.int64)
    sup_of_ident[w_ident[anon]] = sup[w_comp[anon]]
    # (anonymous group, identified component) pairs that share a weak identifier.
    pair_sup = sup_of_ident[w_ident[~anon]]
    pair_comp = w_comp[~anon]
    keep = pair_sup >= 0
    pairs = np.unique(np.stack([pair_sup[keep], pair_comp[keep]], axis=1), axis=0)
    attach = np.full(int(sup.max()) + 1 if n_comp else 0, -1, dtype=np.int64)
    if len(pairs):
        groups, counts = np.unique(pairs[:, 0], return_counts=True)
        single = groups[counts == 1]
        rows = np.isin(pairs[:, 0], single)
        attach[pairs[rows, 0]] = pairs[rows, 1]
    # Final label: identified components keep theirs; anonymous groups take the one they attach
    # to, or n_comp + group.
    label_of_comp = np.where(identified, np.arange(n_comp), n_comp + sup)
    anon_attached = ~identified & (attach[sup] >= 0)
    label_of_comp[anon_attached] = attach[sup[anon_attached]]
    return label_of_comp[comp]


def resolve(
    records: Sequence[tuple[int, Iterable[tuple[str, str]]]],
    rules: IdentityRules,
    blocked: Iterable[tuple[str, str]] = (),
) -> list[list[int]]:
    """Group record ids into people; each group sorted, groups sorted by their first id."""
    index: dict[tuple[str, str], int] = {}
    rec: list[int] = []
    ident: list[int] = []
    for i, (_, idents) in enumerate(records):
        for key in set(idents):
            rec.append(i)
            ident.append(index.setdefault(key, len(index)))
    strong_kinds = {k.value for k in rules.strong_kinds}
    weak_kinds = {k.value for k in rules.weak_kinds}
    blocked_set = set(blocked)
    keys = list(index)
    # Kinds that are neither strong nor weak never link: mark them blocked.
    graph = IdentityGraph(
        n_records=len(records),
        rec=np.asarray(rec, dtype=np.int64),
        ident=np.asarray(ident, dtype=np.int64),
        strong=np.asarray([k in strong_kinds for k, _ in keys], dtype=bool),
        blocked=np.asarray(
            [
                (k, v) in blocked_set or (k not in strong_kinds and k not in weak_kinds)
                for k, v in keys
            ],
            dtype=bool,
        ),
    )
    labels = resolve_graph(graph)
    groups: dict[int, list[int]] = {}
    for i, (record_id, _) in enumerate(records):
        groups.setdefault(int(labels[i]), []).append(record_id)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])
