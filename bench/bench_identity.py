"""Identity resolution throughput and quality on synthetic customers with a known truth.

The generator makes P people in households of 1-3 (a household shares a tablet: a weak device
id), each with 1-5 source records from web (e-mail, often a device), POS (POS id with phone or
loyalty card), app (app user id, sometimes loyalty/e-mail, usually a device) and anonymous web
visits (device only). Records of one person that share no strong identifier cannot be linked by
anyone, so recall below 1 is expected; households keep precision below 1 where an anonymous
visit is attached to the one known member of a shared device.

1. in memory: `resolve_graph` (scipy connected components + the weak-identifier rules) over
   ~1,000,000 identifier occurrences; precision/recall of same-person record pairs vs the truth.
   Baseline: a pure-Python union-find (path halving) over the strong identifiers only.
2. database: `ingest_record` for a slice of the records into a scratch PostgreSQL database
   (the write path: normalisation, region expansion, merges, golden record); records/s.

    python bench/bench_identity.py [--identifiers 1000000] [--db-slice 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.crm.identity.resolver import IdentityGraph, resolve_graph  # noqa: E402

KINDS = ("email", "phone", "loyalty_number", "pos_customer_id", "app_user_id", "device_id")
DEVICE = 5
IntArray = npt.NDArray[np.int64]


def generate(target: int, seed: int) -> tuple[IdentityGraph, IntArray, IntArray, IntArray]:
    """(graph, person of each record, kind of each edge, raw value id of each edge)."""
    rng = np.random.default_rng(seed)
    people = int(target / 6.4)
    sizes = rng.choice([1, 2, 3], size=people, p=[0.55, 0.3, 0.15])
    household = np.repeat(np.arange(len(sizes)), sizes)[:people]
    n_rec = rng.integers(1, 6, size=people)
    person = np.repeat(np.arange(people), n_rec)
    source = rng.choice(4, size=len(person), p=[0.3, 0.35, 0.25, 0.1])  # web, pos, app, anon
    recs, kinds, owners = [], [], []

    def add(mask: npt.NDArray[np.bool_], kind: int) -> None:
        idx = np.flatnonzero(mask)
        recs.append(idx)
        kinds.append(np.full(len(idx), kind))
        owners.append(household[person[idx]] if kind == DEVICE else person[idx])

    u = rng.random((len(person), 4))
    web, pos, app = source == 0, source == 1, source == 2
    add(web, 0)  # e-mail
    add(web & (u[:, 0] < 0.5), DEVICE)
    add(pos, 3)  # POS customer id
    add(pos & (u[:, 1] < 0.6), 2)  # loyalty card
    add(pos & (u[:, 2] < 0.4), 1)  # phone
    add(pos & (u[:, 3] < 0.2), 0)
    add(app, 4)  # app user id
    add(app & (u[:, 1] < 0.7), 0)
    add(app & (u[:, 2] < 0.5), 2)
    add(app & (u[:, 3] < 0.3), 1)
    add(app & (u[:, 0] < 0.8), DEVICE)
    add(source == 3, DEVICE)  # anonymous visit
    rec = np.concatenate(recs)
    kind = np.concatenate(kinds)
    owner = np.concatenate(owners)
    ident_key = kind.astype(np.int64) * (people + 1) + owner
    uniq, ident = np.unique(ident_key, return_inverse=True)
    strong = (uniq // (people + 1)) != DEVICE
    graph = IdentityGraph(
        n_records=len(person),
        rec=rec.astype(np.int64),
        ident=ident.astype(np.int64),
        strong=strong,
        blocked=np.zeros(len(uniq), dtype=bool),
    )
    return graph, person.astype(np.int64), kind.astype(np.int64), owner.astype(np.int64)


def pairs(labels: IntArray) -> int:
    """Same-label record pairs."""
    _, counts = np.unique(labels, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def quality(pred: IntArray, truth: IntArray) -> tuple[float, float]:
    """Pairwise precision and recall of a partition against the truth."""
    both = pred * (int(truth.max()) + 1) + truth
    tp = pairs(both)
    pp, tt = pairs(pred), pairs(truth)
    return (tp / pp if pp else 1.0), (tp / tt if tt else 1.0)


def python_union_find(g: IdentityGraph) -> list[int]:
    """Baseline: union-find over strong identifiers in plain Python lists."""
    parent = list(range(g.n_records + len(g.strong)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    strong = g.strong.tolist()
    for r, i in zip(g.rec.tolist(), g.ident.tolist(), strict=True):
        if strong[i]:
            a, b = find(r), find(g.n_records + i)
            if a != b:
                parent[a] = b
    return [find(r) for r in range(g.n_records)]


def bench_memory(target: int, seed: int) -> None:
    """Part 1: the in-memory resolver."""
    t0 = time.perf_counter()
    g, truth, kind, owner = generate(target, seed)
    gen_s = time.perf_counter() - t0
    print(
        f"generated {len(g.rec):,} identifier occurrences, {g.n_records:,} records, "
        f"{int(truth.max()) + 1:,} true people, {len(g.strong):,} distinct identifiers "
        f"in {gen_s:.1f}s",
        flush=True,
    )
    t0 = time.perf_counter()
    labels = resolve_graph(g)
    fast_s = time.perf_counter() - t0
    precision, recall = quality(labels, truth)
    print(
        f"resolve_graph:        {fast_s:6.2f}s  ({len(g.rec) / fast_s:,.0f} identifiers/s)"
        f"  profiles {len(np.unique(labels)):,}  precision {precision:.4f}  recall {recall:.4f}",
        flush=True,
    )
    _strings(g, kind, owner, truth)
    t0 = time.perf_counter()
    base = np.asarray(python_union_find(g), dtype=np.int64)
    base_s = time.perf_counter() - t0
    bp, br = quality(base, truth)
    print(f"baseline (py UF, strong only): {base_s:6.2f}s  precision {bp:.4f}  recall {br:.4f}")
    print(f"ratio baseline/resolve_graph: {base_s / fast_s:.1f}x", flush=True)


def _strings(g: IdentityGraph, kind: IntArray, owner: IntArray, truth: IntArray) -> None:
    """The same data as (kind, value) strings through `resolve()` (interning included)."""
    from cloud.crm.identity.resolver import resolve
    from cloud.crm.identity.rules import IdentityRules

    by_rec: list[list[tuple[str, str]]] = [[] for _ in range(g.n_records)]
    for r, k, o in zip(g.rec.tolist(), kind.tolist(), owner.tolist(), strict=True):
        by_rec[r].append((KINDS[k], _raw(KINDS[k], o)))
    t0 = time.perf_counter()
    groups = resolve(list(enumerate(by_rec)), IdentityRules())
    secs = time.perf_counter() - t0
    labels = np.empty(g.n_records, dtype=np.int64)
    for n, group in enumerate(groups):
        labels[group] = n
    precision, recall = quality(labels, truth)
    print(
        f"resolve() from strings: {secs:6.2f}s  ({len(g.rec) / secs:,.0f} identifiers/s)"
        f"  precision {precision:.4f}  recall {recall:.4f}",
        flush=True,
    )


def _scratch() -> tuple[str, str]:
    """(admin url, url) of a new migrated scratch database."""
    import psycopg

    from cloud.db.migrate import migrate

    admin = os.environ.get("MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"mp_bench_identity_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.rpartition("/")[0] + "/" + name
    migrate(url)
    return admin, url


def _drop(admin: str, url: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


def _slice(n: int, seed: int) -> dict[int, list[tuple[str, str]]]:
    g, _, kind, owner = generate(n * 3, seed)
    by_rec: dict[int, list[tuple[str, str]]] = {}
    for r, k, o in zip(g.rec.tolist(), kind.tolist(), owner.tolist(), strict=True):
        if r < n:
            by_rec.setdefault(r, []).append((KINDS[k], _raw(KINDS[k], o)))
    return by_rec


def bench_database(n: int, seed: int) -> None:
    """Part 2: the write path, record by record (ingest_record) and in bulk (ingest_many, as
    the CSV import does), each on a scratch database."""
    import psycopg

    from cloud.crm.identity.rules import IdentityRules
    from cloud.crm.identity.service import PendingRecord, ingest_many, ingest_record
    from cloud.crm.identity.survivorship import validate_attributes

    by_rec = _slice(n, seed)
    admin, url = _scratch()
    try:
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            for i, (r, ids) in enumerate(sorted(by_rec.items()), start=1):
                ingest_record(conn, source="bench", identifiers=ids, source_key=str(r))
                if i % 500 == 0:
                    conn.commit()
                    print(f"  {i}/{len(by_rec)} records", flush=True)
            conn.commit()
            secs = time.perf_counter() - t0
            profiles = conn.execute(
                "SELECT count(*) FROM crm_profiles WHERE merged_into IS NULL"
            ).fetchone()
        print(
            f"ingest_record (DB): {len(by_rec)} records in {secs:.1f}s = "
            f"{len(by_rec) / secs:.0f} records/s, {profiles[0] if profiles else 0} profiles"
        )
        _bare_insert_baseline(url, len(by_rec), secs)
    finally:
        _drop(admin, url)
    admin, url = _scratch()
    rules = IdentityRules()
    try:
        from cloud.crm.identity.service import normalize_identifiers

        t0 = time.perf_counter()
        pending = [
            PendingRecord(
                "bench",
                str(r),
                0,
                validate_attributes({}),
                datetime.now(UTC),
                normalize_identifiers(ids, rules),
            )
            for r, ids in sorted(by_rec.items())
        ]
        with psycopg.connect(url) as conn:
            for start in range(0, len(pending), 1000):
                ingest_many(conn, pending[start : start + 1000], rules=rules)
            conn.commit()
            secs = time.perf_counter() - t0
            profiles = conn.execute(
                "SELECT count(*) FROM crm_profiles WHERE merged_into IS NULL"
            ).fetchone()
        print(
            f"ingest_many (DB, bulk import path, 1000 per batch): {len(pending)} records in "
            f"{secs:.1f}s = {len(pending) / secs:.0f} records/s, "
            f"{profiles[0] if profiles else 0} profiles"
        )
    finally:
        _drop(admin, url)


def _bare_insert_baseline(url: str, n: int, ingest_s: float) -> None:
    """Baseline for the write path: bare INSERTs of the same number of records, one by one."""
    import psycopg

    with psycopg.connect(url) as conn:
        pid = conn.execute("INSERT INTO crm_profiles DEFAULT VALUES RETURNING id").fetchone()
        t0 = time.perf_counter()
        for i in range(n):
            conn.execute(
                "INSERT INTO crm_records (profile_id, source, source_key) VALUES (%s, 'bare', %s)",
                (pid[0] if pid else 1, str(i)),
            )
        conn.commit()
        secs = time.perf_counter() - t0
    print(
        f"baseline bare INSERT: {n / secs:.0f} records/s; ratio ingest/bare "
        f"{(n / ingest_s) / (n / secs):.3f}"
    )


def _raw(kind: str, owner: int) -> str:
    if kind == "email":
        return f"person{owner}@bench.example"
    if kind == "phone":
        return f"+1 212 {200 + owner % 700} {owner // 700 % 10000:04d}"
    if kind == "device_id":
        return f"hh-{owner}"
    return f"{kind[:3]}{owner}"


def main(argv: list[str] | None = None) -> None:
    """Run both parts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--identifiers", type=int, default=1_000_000, help="Target occurrences.")
    parser.add_argument("--db-slice", type=int, default=2000, help="Records through the DB.")
    parser.add_argument("--seed", type=int, default=11, help="Generator seed.")
    args = parser.parse_args(argv)
    bench_memory(args.identifiers, args.seed)
    if args.db_slice:
        bench_database(args.db_slice, args.seed)


if __name__ == "__main__":
    main()


__all__: list[Any] = ["generate", "main", "quality"]
