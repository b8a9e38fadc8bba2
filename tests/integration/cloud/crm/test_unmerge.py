"""Unmerge restores exactly the people the records give without the link that merged them: a
person whose own records share the bridging e-mail is not split; a property test over random
record streams compares every undo with a pure resolution."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cloud.crm import consent
from cloud.crm.errors import CrmConflictError
from cloud.crm.identity.resolver import resolve
from cloud.crm.identity.rules import IdentityRules
from cloud.crm.identity.service import ingest_record
from cloud.crm.identity.unmerge import unmerge
from cloud.crm.loyalty import ledger
from cloud.crm.loyalty.program import LoyaltyProgram
from cloud.crm.profiles import golden_record
from cloud.crm.transactions import record_transaction
from cloud.db.repositories import crm_identity as repo

Conn = psycopg.Connection[Any]


def _phone(token: str) -> str:
    """A valid US number unique enough for one test run (derived from a hex token)."""
    h = int(token[:8], 16)
    return f"+1 212 {200 + h % 700} {(h // 700) % 10000:04d}"


def _buy(conn: Conn, store_id: str, receipt: str, ids: dict[str, str]) -> tuple[int, int]:
    res = record_transaction(
        conn,
        store_id=store_id,
        external_id=receipt,
        occurred_at=datetime.now(UTC),
        currency="USD",
        total_amount=Decimal("20.00"),
        identifiers=ids,
        program=LoyaltyProgram(),
    )
    return res.transaction_id, res.profile_id


def test_undo_keeps_a_person_whose_own_records_share_the_bridging_email(
    conn: Conn, store_id: str, uid: str
) -> None:
    """Bea (POS) is older; Ann has a web and an app record joined by her e-mail, with her phone
    on the app record. A support record wrongly carries Ann's e-mail and Bea's POS id."""
    email, phone, pos = f"ann-{uid}@x.org", _phone(uid), f"P{uid}"
    bea_txn, bea = _buy(conn, store_id, f"bea-{uid}", {"pos_customer_id": pos})
    web = ingest_record(
        conn, source="web", identifiers={"email": email}, attributes={"first_name": "Ann"}
    )
    app = ingest_record(conn, source="app", identifiers={"email": email, "phone": phone})
    ann = web.profile_id
    assert app.profile_id == ann and ann != bea
    ann_txn, _ = _buy(conn, store_id, f"ann-{uid}", {"phone": phone})
    account = ledger.open_account(conn, profile_id=ann, member_number=f"A{uid}")
    consent.set_consent(
        conn,
        profile_id=ann,
        channel="sms",
        purpose="marketing",
        granted=True,
        source="test",
        actor="t",
    )
    wrong = ingest_record(
        conn, source="support", identifiers={"email": email, "pos_customer_id": pos}
    )
    conn.commit()
    assert wrong.profile_id == bea and wrong.merged_profiles == [ann]
    merge_id = repo.merges_of_profile(conn, ann)[0]["id"]

    assert unmerge(conn, merge_id=merge_id, actor="t") == (bea, ann)
    conn.commit()

    ann_view = golden_record(conn, profile_id=ann)
    assert ann_view["id"] == ann
    linked = {(i["kind"], i["value"]) for i in ann_view["identifiers"] if not i["blocked"]}
    assert ("email", email) in linked and "phone" in {k for k, _ in linked}
    assert sorted(repo.record_ids_of_profile(conn, ann)) == sorted(
        {web.record_id, app.record_id} | _records_of_txn(conn, ann_txn)
    )
    assert [t["id"] for t in ann_view["recent_transactions"]] == [ann_txn]
    assert [a["id"] for a in ann_view["loyalty_accounts"]] == [account["id"]]
    assert {(c["channel"], c["status"]) for c in ann_view["consents"]} == {("sms", "granted")}
    assert ann_view["attributes"]["first_name"] == "Ann"
    bea_view = golden_record(conn, profile_id=bea)
    assert [t["id"] for t in bea_view["recent_transactions"]] == [bea_txn]
    assert sorted(repo.record_ids_of_profile(conn, bea)) == sorted(
        _records_of_txn(conn, bea_txn) | {wrong.record_id}
    )
    # nothing was blocked everywhere: Ann's e-mail still finds Ann and links her next record
    assert repo.profile_by_identifier(conn, "email", email) == ann
    again = ingest_record(conn, source="web", identifiers={"email": email}, source_key=uid)
    assert again.profile_id == ann and again.merged_profiles == []
    live = conn.execute(
        "SELECT count(*) FROM crm_profiles WHERE id IN (SELECT profile_id FROM crm_records"
        " WHERE id = ANY(%s)) AND merged_into IS NULL",
        ([web.record_id, app.record_id, wrong.record_id, again.record_id],),
    ).fetchone()
    assert live == (2,)  # no third profile was split off
    conn.commit()


def _records_of_txn(conn: Conn, txn_id: int) -> set[int]:
    row = conn.execute("SELECT record_id FROM crm_transactions WHERE id = %s", (txn_id,))
    return {int(r[0]) for r in row.fetchall()}


_KINDS = ("email", "phone", "device_id")
_RULES = IdentityRules()
_record = st.lists(
    st.tuples(st.sampled_from(_KINDS), st.integers(0, 3)), min_size=1, max_size=3, unique=True
)


def _value(kind: str, n: int, tag: str) -> str:
    if kind == "email":
        return f"p{n}-{tag}@example.org"
    if kind == "phone":
        return _phone(f"{int(tag, 16) + n:08x}")
    return f"dev{n}-{tag}"


def _partition(groups: list[list[int]]) -> set[frozenset[int]]:
    return {frozenset(g) for g in groups}


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(_record, min_size=6, max_size=12), pick=st.integers(0, 50))
def test_undo_of_any_merge_matches_resolving_without_its_bridging_record(
    database_url: str, records: list[Any], pick: int
) -> None:
    """Ingest a random stream, undo one of its merges; the people are then those the pure
    resolver gives for the records without the bridging one (the bridge keeps the survivor's
    side), or the undo is refused because other records link the two people as well."""
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(database_url) as c:
        rid: dict[int, int] = {}
        merges: list[int] = []
        for i, rec in enumerate(records):
            ids = [(k, _value(k, n, tag)) for k, n in rec]
            res = ingest_record(c, source="web", identifiers=ids, source_key=f"{tag}-{i}")
            rid[res.record_id] = i
            row = c.execute(
                "SELECT id FROM crm_merges WHERE %s = ANY(bridge_record_ids)"
                " AND reason NOT LIKE 'split%%' ORDER BY id",
                (res.record_id,),
            )
            merges += [int(r[0]) for r in row.fetchall()]
        if not merges:
            event("no merge in the stream")
            c.rollback()
            return
        merge_id = merges[pick % len(merges)]
        merge = repo.get_merge(c, merge_id)
        assert merge is not None
        bridges = {int(b) for b in merge["bridge_record_ids"]}
        absorbed = int(merge["absorbed_id"])
        idents = repo.identifiers_of_records(c, list(rid))
        without = resolve([(r, idents[r]) for r in rid if r not in bridges], _RULES)
        moved = {int(r) for r in merge["record_ids"]}
        back = {r for g in without if set(g) & moved for r in g}
        live = repo.resolve_profile_id(c, int(merge["survivor_id"]))
        held = set(repo.record_ids_of_profile(c, live or 0))
        try:
            unmerge(c, merge_id=merge_id, actor="prop")
        except CrmConflictError:
            # refused only when the merge's records left the survivor since (a later split),
            # when, without the bridge, the survivor's own records join the absorbed side, or
            # when the absorbed records would join a third person (an anonymous group whose
            # device then touches exactly one other identified person)
            assert not moved <= held or not (held - back - bridges) or not back <= held
            event("undo refused")
            c.rollback()
            return
        event("undone")
        where = {
            r: repo.resolve_profile_id(
                c, c.execute("SELECT profile_id FROM crm_records WHERE id = %s", (r,)).fetchone()[0]
            )
            for r in rid
        }
        blocks = repo.blocked_identifiers(c, _keys(idents, set(rid)))
        c.rollback()
    got: dict[int, set[int]] = {}
    for r, p in where.items():
        got.setdefault(int(p or 0), set()).add(r)
    # the absorbed profile holds the records that group with its side without the bridge (all
    # of them, unless a weak identifier had to be blocked: an anonymous group it attached)
    assert got[absorbed] & moved and got[absorbed] - bridges <= back
    assert not {k for k, _ in blocks} & {k.value for k in _RULES.strong_kinds}
    if not blocks:
        assert got[absorbed] - bridges == back
    # and everybody is as the resolver puts them once the bridges stop reaching the other side
    apart = _keys(idents, back)
    cut = {r: [k for k in idents[r] if r not in bridges or k not in apart] for r in rid}
    expected = _partition(resolve(list(cut.items()), _RULES, blocks))
    assert {frozenset(g) for g in got.values()} == expected
    if blocks:
        event("undone with a weak identifier blocked")


def _keys(idents: dict[int, list[tuple[str, str]]], records: set[int]) -> set[tuple[str, str]]:
    return {k for r in records for k in idents[r]}
