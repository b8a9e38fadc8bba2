"""The customer export: formula cells neutralised (OWASP CSV injection), a dated attachment, the
pii_export permission (admin yes, hq_marketer no by default) and an audit row per export."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.crm.importer import neutralise
from tests.integration.cloud.security.crm_helpers import headers, problem

FORMULA = "=cmd|' /C calc'!A0"


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        (FORMULA, "'" + FORMULA),
        ("+1+cmd", "'+1+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Ann", "Ann"),
        ("a=b", "a=b"),
        ("+4930123456;+12125550100", "+4930123456;+12125550100"),  # E.164 list: data
        ("+4930123456;=1", "'+4930123456;=1"),
    ],
)
def test_neutralise(cell: str, shown: str) -> None:
    assert neutralise(cell) == shown


def _import(client: TestClient, auth: dict[str, str], first_name: str) -> str:
    email = f"xl.{uuid.uuid4().hex[:12]}@example.org"
    buf = io.StringIO()
    csv.writer(buf).writerows([["email", "first_name", "city"], [email, first_name, "@home"]])
    res = client.post(
        "/v1/customers/import",
        content=buf.getvalue().encode(),
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert res.status_code == 200 and res.json()["imported"] == 1, res.text
    return email


def test_formula_names_are_exported_as_text_in_a_dated_attachment(
    client: TestClient, token_for: Any
) -> None:
    """`=cmd|' /C calc'!A0` used to be imported and exported verbatim, with no file name."""
    admin = headers(token_for, Role.ADMIN)
    email = _import(client, admin, FORMULA)
    res = client.get("/v1/customers/export", headers=admin)
    assert res.status_code == 200, res.text
    today = datetime.now(UTC).date().isoformat()
    assert res.headers["content-disposition"] == f'attachment; filename="customers-{today}.csv"'
    rows = list(csv.DictReader(io.StringIO(res.text)))
    mine = [r for r in rows if r["emails"] == email]
    assert len(mine) == 1
    assert mine[0]["first_name"] == "'" + FORMULA and mine[0]["city"] == "'@home"
    # Other tests' customers share this database: their E.164 phone lists start with "+" and are
    # data, not formulas (Excel reads them as numbers); anything else must not open a formula.
    phones = re.compile(r"\+\d{1,15}(;\+\d{1,15})*")
    unsafe = [
        v
        for r in rows
        for v in r.values()
        if v and v.startswith(("=", "+", "-", "@", "\t", "\r")) and not phones.fullmatch(v)
    ]
    assert unsafe == []


def test_marketer_lacks_pii_export_and_admin_exports_are_audited(
    client: TestClient, token_for: Any, database_url: str
) -> None:
    """One marketer call used to export every customer's e-mail and phone, unaudited."""
    marketer = headers(token_for, Role.HQ_MARKETER)
    denied = problem(client.get("/v1/customers/export", headers=marketer), 403)
    assert "pii_export" in denied["detail"]
    subject = f"dpo-{uuid.uuid4().hex[:8]}"
    admin = headers(token_for, Role.ADMIN, subject=subject)
    full = client.get("/v1/customers/export", headers=admin)
    some = client.get("/v1/customers/export", params={"lifecycle_stage": "customer"}, headers=admin)
    assert full.status_code == some.status_code == 200
    counts = [len(list(csv.DictReader(io.StringIO(r.text)))) for r in (full, some)]
    assert counts[0] > 0
    assert all(r["lifecycle_stage"] == "customer" for r in csv.DictReader(io.StringIO(some.text)))
    with psycopg.connect(database_url) as conn:
        audit = conn.execute(
            "SELECT role, action, row_count, detail, occurred_at FROM audit_log"
            " WHERE actor = %s ORDER BY id",
            (subject,),
        ).fetchall()
    assert [(a[0], a[1], a[2], a[3]) for a in audit] == [
        ("admin", "crm.customers.export", counts[0], {"filter": {"lifecycle_stage": None}}),
        ("admin", "crm.customers.export", counts[1], {"filter": {"lifecycle_stage": "customer"}}),
    ]
    assert all((datetime.now(UTC) - a[4]).total_seconds() < 3600 for a in audit)


def test_pii_export_permission_is_a_setting(
    settings: Any, pg_pool: Any, token_for: Any, database_url: str
) -> None:
    from cloud.api.app import create_app

    wider = settings.model_copy(
        update={"crm_pii_export_roles": frozenset({"admin", "hq_marketer"})}
    )
    marketer = headers(token_for, Role.HQ_MARKETER)
    with TestClient(create_app(wider, pool=pg_pool)) as c:
        assert c.get("/v1/customers/export", headers=marketer).status_code == 200
    store_manager = headers(token_for, Role.STORE_MANAGER)
    with TestClient(create_app(wider, pool=pg_pool)) as c:
        problem(c.get("/v1/customers/export", headers=store_manager), 403)
