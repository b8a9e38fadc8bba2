"""CSV import with a per-row report, and export."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from fastapi.testclient import TestClient

from cloud.core.security import Role


def test_import_reports_bad_rows_and_stores_good_ones(
    client: TestClient, marketer: dict[str, str], token_for: Any
) -> None:
    u = uuid.uuid4().hex[:8]
    data = (
        "email,phone,first_name,country,source_key\n"
        f"ann.{u}@example.org,,Ann,DE,k1-{u}\n"
        f"not-an-email,,Bob,DE,k2-{u}\n"
        f",+1 212 555 {int(u[:4], 16) % 10000:04d},Cy,US,k3-{u}\n"
        f"ann.{u}@example.org,,Ann,DE,k1-{u}\n"
        f"dee.{u}@example.org,,Dee,ZZ,k5-{u}\n"
        f",,Eve,FR,k6-{u}\n"
    )
    res = client.post(
        "/v1/customers/import",
        content=data.encode(),
        headers={**marketer, "Content-Type": "text/csv"},
    )
    assert res.status_code == 200, res.text
    report = res.json()
    assert (report["rows"], report["imported"], report["rejected"]) == (6, 2, 4)
    by_line = {e["line"]: e for e in report["errors"]}
    assert by_line[3]["field"] == "identifiers.email"
    assert "duplicate of line 2" in by_line[5]["message"]
    assert by_line[6]["field"] == "country"
    assert "at least one identifier" in by_line[7]["message"]
    found = client.get(
        "/v1/customers/lookup",
        params={"kind": "email", "value": f"ann.{u}@example.org"},
        headers=marketer,
    )
    assert found.json()["attributes"] == {"first_name": "Ann", "country": "DE"}
    admin = token_for(Role.ADMIN)  # the export needs the pii_export permission
    exported = client.get("/v1/customers/export", headers=admin)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert any(r["emails"] == f"ann.{u}@example.org" and r["first_name"] == "Ann" for r in rows)


def test_import_refuses_unknown_columns_and_ragged_files(
    client: TestClient, marketer: dict[str, str]
) -> None:
    headers = {**marketer, "Content-Type": "text/csv"}
    bad = client.post(
        "/v1/customers/import", content=b"email,shoe_size\na@b.org,42\n", headers=headers
    )
    assert bad.status_code == 422 and "shoe_size" in bad.json()["detail"]
    ragged = client.post(
        "/v1/customers/import", content=b"email,first_name\na@b.org\n", headers=headers
    )
    assert ragged.status_code == 422 and "cannot be parsed" in ragged.json()["detail"]


def test_rows_of_one_file_resolve_together(client: TestClient, marketer: dict[str, str]) -> None:
    u = uuid.uuid4().hex[:8]
    phone = f"+1 646 {200 + int(u[:3], 16) % 700} {int(u[3:7], 16) % 10000:04d}"
    data = (
        "source_key,email,phone,loyalty_number,first_name\n"
        f"a-{u},lin.{u}@example.org,,,Lin\n"
        f"b-{u},lin.{u}@example.org,{phone},,\n"
        f"c-{u},,{phone},L{u},\n"
        f"d-{u},other.{u}@example.org,,,Oz\n"
    )
    report = client.post(
        "/v1/customers/import",
        content=data.encode(),
        headers={**marketer, "Content-Type": "text/csv"},
    ).json()
    assert report["imported"] == 4 and report["rejected"] == 0
    ids = {
        kind: client.get(
            "/v1/customers/lookup", params={"kind": kind, "value": value}, headers=marketer
        ).json()["id"]
        for kind, value in [
            ("email", f"lin.{u}@example.org"),
            ("phone", phone),
            ("loyalty_number", f"L{u}"),
        ]
    }
    assert len(set(ids.values())) == 1
    other = client.get(
        "/v1/customers/lookup",
        params={"kind": "email", "value": f"other.{u}@example.org"},
        headers=marketer,
    ).json()
    assert other["id"] not in ids.values() and other["attributes"] == {"first_name": "Oz"}
    again = client.post(
        "/v1/customers/import",
        content=data.encode(),
        headers={**marketer, "Content-Type": "text/csv"},
    ).json()
    assert again["imported"] == 4  # same source keys: records updated, no new profiles
    assert (
        client.get(
            "/v1/customers/lookup",
            params={"kind": "email", "value": f"lin.{u}@example.org"},
            headers=marketer,
        ).json()["id"]
        == ids["email"]
    )
