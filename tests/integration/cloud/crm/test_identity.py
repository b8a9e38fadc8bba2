"""Identity resolution on the real database: one person across channels, households, unmerge,
order independence and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.identity.service import ingest_record
from cloud.crm.identity.unmerge import unmerge
from cloud.crm.profiles import golden_record
from cloud.crm.transactions import LineItem, record_transaction
from cloud.db.repositories import crm_identity as repo

Conn = psycopg.Connection[Any]


def _phone(token: str) -> str:
    """A valid US number unique enough for one test run (derived from a uuid token)."""
    h = int(token[:8], 16)
    return f"+1 212 {200 + h % 700} {(h // 700) % 10000:04d}"


def test_same_person_by_email_phone_and_loyalty_card_is_one_profile(
    conn: Conn, store_id: str, uid: str
) -> None:
    web = ingest_record(
        conn,
        source="web",
        identifiers={"email": f"Jo.{uid}@Example.com"},
        attributes={"first_name": "Jo"},
    )
    till = record_transaction(
        conn,
        store_id=store_id,
        external_id=f"r-{uid}",
        occurred_at=datetime.now(UTC),
        currency="USD",
        total_amount=Decimal("10.00"),
        identifiers={"phone": _phone(uid), "pos_customer_id": f"C{uid}"},
        items=[LineItem(sku="S1", quantity=Decimal(1), unit_price=Decimal("10.00"))],
        earn_points=False,
    )
    assert till.profile_id != web.profile_id  # nothing links them yet
    app = ingest_record(
        conn,
        source="app",
        identifiers=[
            ("loyalty_number", f"L{uid}"),
            ("email", f"jo.{uid}@example.com"),
            ("phone", _phone(uid).replace(" ", "")),
        ],
    )
    conn.commit()
    survivor = min(web.profile_id, till.profile_id)
    assert app.profile_id == survivor
    assert set(app.merged_profiles) == {max(web.profile_id, till.profile_id)}
    view = golden_record(conn, profile_id=max(web.profile_id, till.profile_id))
    assert view["id"] == survivor  # the absorbed id redirects
    kinds = {i["kind"] for i in view["identifiers"]}
    assert kinds == {"email", "phone", "pos_customer_id", "loyalty_number"}
    assert [t["id"] for t in view["recent_transactions"]] == [till.transaction_id]
    assert view["attributes"] == {"first_name": "Jo"}


def test_household_device_does_not_merge_two_people(conn: Conn, uid: str) -> None:
    device = {"device_id": f"tablet-{uid}"}
    ann = ingest_record(conn, source="app", identifiers={"email": f"ann-{uid}@x.org", **device})
    bob = ingest_record(conn, source="app", identifiers={"email": f"bob-{uid}@x.org", **device})
    anon = ingest_record(conn, source="web", identifiers=device)
    conn.commit()
    assert ann.profile_id != bob.profile_id
    assert anon.profile_id not in (ann.profile_id, bob.profile_id)  # ambiguous: stays alone


def test_anonymous_device_attaches_to_its_only_identified_owner(conn: Conn, uid: str) -> None:
    browse = ingest_record(conn, source="web", identifiers={"device_id": f"phone-{uid}"})
    login = ingest_record(
        conn, source="app", identifiers={"device_id": f"phone-{uid}", "app_user_id": f"u{uid}"}
    )
    conn.commit()
    assert login.profile_id == browse.profile_id
    assert repo.get_profile(conn, login.profile_id)["identified"] is True


def test_unmerge_restores_both_profiles_and_keeps_them_apart(
    conn: Conn, store_id: str, uid: str
) -> None:
    a = ingest_record(
        conn,
        source="web",
        identifiers={"email": f"a-{uid}@x.org"},
        attributes={"first_name": "Ann"},
    )
    b = record_transaction(
        conn,
        store_id=store_id,
        external_id=f"u-{uid}",
        occurred_at=datetime.now(UTC),
        currency="EUR",
        total_amount="5.00",
        identifiers={"pos_customer_id": f"P{uid}"},
        attributes={"first_name": "Bea"},
        earn_points=False,
    )
    wrong = ingest_record(  # a typo at the till links Ann's e-mail to Bea's POS id
        conn,
        source="support",
        identifiers={"email": f"a-{uid}@x.org", "pos_customer_id": f"P{uid}"},
    )
    conn.commit()
    assert wrong.merged_profiles == [b.profile_id]
    merge_id = repo.merges_of_profile(conn, b.profile_id)[0]["id"]
    survivor, restored = unmerge(conn, merge_id=merge_id, actor="t")
    conn.commit()
    assert (survivor, restored) == (a.profile_id, b.profile_id)
    assert repo.resolve_profile_id(conn, b.profile_id) == b.profile_id
    bea = golden_record(conn, profile_id=b.profile_id)
    assert bea["attributes"]["first_name"] == "Bea"
    assert [t["id"] for t in bea["recent_transactions"]] == [b.transaction_id]
    assert golden_record(conn, profile_id=a.profile_id)["attributes"]["first_name"] == "Ann"
    again = ingest_record(conn, source="web", identifiers={"email": f"a-{uid}@x.org"})
    assert again.profile_id == a.profile_id and again.merged_profiles == []
    with pytest.raises(Exception, match="already undone"):
        unmerge(conn, merge_id=merge_id, actor="t")


@pytest.mark.parametrize(
    ("identifiers", "field"),
    [
        ({"email": "not-an-email"}, "identifiers.email"),
        ({"email": "a@@b.com"}, "identifiers.email"),
        ({"phone": "12"}, "identifiers.phone"),
        ({"phone": "+1 000 000 0000"}, "identifiers.phone"),
        ({"email": "ok@x.org", "phone": "abc"}, "identifiers.phone"),
        ({"shoe_size": "42"}, "identifiers.shoe_size"),
    ],
)
def test_bad_identifiers_are_rejected_and_nothing_is_written(
    conn: Conn, identifiers: dict[str, str], field: str
) -> None:
    before = conn.execute("SELECT count(*) FROM crm_records").fetchone()
    with pytest.raises(CrmInvalidInputError) as err:
        ingest_record(conn, source="web", identifiers=identifiers)
    assert err.value.errors and err.value.errors[0]["field"] == field
    assert conn.execute("SELECT count(*) FROM crm_records").fetchone() == before


def test_bad_attributes_name_the_field(conn: Conn, uid: str) -> None:
    with pytest.raises(CrmInvalidInputError) as err:
        ingest_record(
            conn, source="web", identifiers={"email": f"{uid}@x.org"}, attributes={"country": "XX"}
        )
    assert err.value.errors is not None
    assert [e["field"] for e in err.value.errors] == ["country"]


_KINDS = ("email", "phone", "device_id")
_record = st.lists(
    st.tuples(st.sampled_from(_KINDS), st.integers(0, 3)), min_size=1, max_size=3, unique=True
)


def _value(kind: str, n: int, tag: str) -> str:
    if kind == "email":
        return f"p{n}-{tag}@example.org"
    if kind == "phone":
        return _phone(f"{int(tag, 16) + n:08x}")
    return f"dev{n}-{tag}"


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(_record, min_size=2, max_size=6), order=st.randoms(use_true_random=False))
def test_merging_is_order_independent(database_url: str, records: list[Any], order: Any) -> None:
    """The same records ingested in two orders give the same partition of records."""
    partitions = []
    for attempt in range(2):
        tag = uuid.uuid4().hex[:8]
        idx = list(range(len(records)))
        if attempt:
            order.shuffle(idx)
        with psycopg.connect(database_url) as c:
            got: dict[int, int] = {}
            for i in idx:
                ids = [(k, _value(k, n, tag)) for k, n in records[i]]
                got[i] = ingest_record(
                    c, source="web", identifiers=ids, source_key=f"{tag}-{i}"
                ).record_id
            where = {
                rid: repo.resolve_profile_id(
                    c,
                    c.execute(
                        "SELECT profile_id FROM crm_records WHERE id = %s", (rid,)
                    ).fetchone()[0],
                )
                for rid in got.values()
            }
            c.rollback()
        groups: dict[int, set[int]] = {}
        for i, rid in got.items():
            groups.setdefault(where[rid], set()).add(i)
        partitions.append(sorted(sorted(g) for g in groups.values()))
    assert partitions[0] == partitions[1]
