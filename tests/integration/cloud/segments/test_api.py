"""The segments API for marketers over the served app: CRUD, preview, members, sizes, static
import; unknown names in a rule are a 422 naming them; every error is a problem body."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from cloud.core.security import Role
from cloud.crm.segments.service import snapshot


@pytest.fixture
def marketer(token_for: Any) -> dict[str, str]:
    headers: dict[str, str] = token_for(Role.HQ_MARKETER, subject="marketer@hq")
    return headers


@pytest.fixture
def city(database_url: str) -> tuple[str, list[int]]:
    """A city only this test's three profiles live in."""
    name = f"city-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url) as conn:
        ids = [
            int(
                conn.execute(
                    "INSERT INTO crm_profiles (attributes) VALUES (%s) RETURNING id",
                    (Jsonb({"city": name, "birth_year": 1980 + i}),),
                ).fetchone()[0]
            )  # type: ignore[index]
            for i in range(3)
        ]
    return name, ids


def _rule(city: str) -> dict[str, Any]:
    return {"type": "attribute", "attribute": "city", "op": "eq", "value": city}


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    return body


def test_dynamic_segment_lifecycle(
    client: TestClient, marketer: dict[str, str], city: tuple[str, list[int]], database_url: str
) -> None:
    name, ids = city
    rule = {
        "type": "and",
        "rules": [
            _rule(name),
            {"type": "attribute", "attribute": "birth_year", "op": "gte", "value": 1981},
        ],
    }
    pre = client.post(
        "/v1/segments/preview", json={"rule": rule, "sample_size": 1}, headers=marketer
    )
    assert pre.status_code == 200 and pre.json() == {"size": 2, "sample": [ids[1]]}
    made = client.post(
        "/v1/segments", json={"name": name, "kind": "dynamic", "rule": rule}, headers=marketer
    )
    assert made.status_code == 201, made.text
    seg = made.json()
    assert seg["size"] == 2 and seg["rule"]["type"] == "and" and seg["created_by"] == "marketer@hq"
    members = client.get(f"/v1/segments/{seg['id']}/members", headers=marketer).json()
    assert [m["profile_id"] for m in members] == ids[1:]
    dup = client.post(
        "/v1/segments", json={"name": name.upper(), "kind": "static"}, headers=marketer
    )
    _problem(dup, 409)
    changed = client.patch(
        f"/v1/segments/{seg['id']}", json={"rule": _rule(name)}, headers=marketer
    )
    assert changed.status_code == 200 and changed.json()["size"] == 3
    with psycopg.connect(database_url) as conn:
        snapshot(conn)
    sizes = client.get(f"/v1/segments/{seg['id']}/sizes", headers=marketer).json()
    assert [s["size"] for s in sizes] == [3]
    imp = client.post(
        f"/v1/segments/{seg['id']}/members", json={"profile_ids": ids}, headers=marketer
    )
    _problem(imp, 409)
    assert client.delete(f"/v1/segments/{seg['id']}", headers=marketer).status_code == 204
    _problem(client.get(f"/v1/segments/{seg['id']}", headers=marketer), 404)


def test_static_import(
    client: TestClient, marketer: dict[str, str], city: tuple[str, list[int]]
) -> None:
    name, ids = city
    seg = client.post(
        "/v1/segments", json={"name": name, "kind": "static"}, headers=marketer
    ).json()
    out = client.post(
        f"/v1/segments/{seg['id']}/members", json={"profile_ids": [ids[0], 2**62]}, headers=marketer
    )
    assert out.status_code == 200 and out.json() == {
        "added": 1,
        "already_members": 0,
        "unknown": [2**62],
    }
    assert client.get(f"/v1/segments/{seg['id']}", headers=marketer).json()["size"] == 1


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ({"type": "attribute", "attribute": "shoe_size", "op": "eq", "value": 42}, "shoe_size"),
        (
            {"type": "event", "event": "view", "where": [{"property": "colour", "value": "red"}]},
            "colour",
        ),
        (
            {
                "type": "not",
                "rule": {
                    "type": "attribute",
                    "attribute": "birth_year",
                    "op": "eq",
                    "value": "1980",
                },
            },
            "birth_year",
        ),
        ({"type": "planets", "x": 1}, "planets"),
        ({"type": "attribute", "attribute": "city", "op": "like", "value": "x"}, "op"),
        # regression: a NUL in a value reached PostgreSQL and was a 500
        ({"type": "attribute", "attribute": "city", "op": "eq", "value": "a\u0000b"}, "value"),
        ({"type": "event", "event": "a\u0000b"}, "event"),
        ({"type": "loyalty_tier", "tiers": ["\u0000"]}, "tiers"),
        ({"type": "store_visited", "store_id": "\u0000"}, "store_id"),
    ],
)
def test_a_bad_rule_is_a_422_naming_the_field(
    client: TestClient, marketer: dict[str, str], rule: dict[str, Any], named: str
) -> None:
    for path, body in [
        ("/v1/segments", {"name": f"bad-{uuid.uuid4().hex[:6]}", "kind": "dynamic", "rule": rule}),
        ("/v1/segments/preview", {"rule": rule}),
    ]:
        problem = _problem(client.post(path, json=body, headers=marketer), 422)
        assert named in str(problem), problem


def test_a_nul_in_a_name_is_a_422(client: TestClient, marketer: dict[str, str]) -> None:
    body = {"name": "a\u0000b", "description": "\u0000", "kind": "static"}
    problem = _problem(client.post("/v1/segments", json=body, headers=marketer), 422)
    assert "name" in str(problem) and "description" in str(problem)


def test_a_rule_nine_levels_deep_is_a_422(client: TestClient, marketer: dict[str, str]) -> None:
    # regression: the depth check ran outside the error translation and was a 500
    rule: dict[str, Any] = {"type": "lifecycle", "stages": ["purchase"]}
    for _ in range(9):
        rule = {"type": "not", "rule": rule}
    for path, body in [
        ("/v1/segments/preview", {"rule": rule}),
        ("/v1/segments", {"name": "deep", "kind": "dynamic", "rule": rule}),
    ]:
        problem = _problem(client.post(path, json=body, headers=marketer), 422)
        assert "deeper than 8" in problem["detail"]


def test_deep_rules_are_refused_before_parsing(
    client: TestClient, marketer: dict[str, str]
) -> None:
    rule: dict[str, Any] = {"type": "lifecycle", "stages": ["purchase"]}
    for _ in range(200):
        rule = {"type": "not", "rule": rule}
    _problem(client.post("/v1/segments/preview", json={"rule": rule}, headers=marketer), 422)


def test_roles_and_missing(client: TestClient, token_for: Any, marketer: dict[str, str]) -> None:
    manager = token_for(Role.STORE_MANAGER, stores={"s1"})
    _problem(client.get("/v1/segments", headers=manager), 403)
    _problem(client.get("/v1/segments/999999999", headers=marketer), 404)
    _problem(client.get("/v1/segments/99999999999999999999", headers=marketer), 422)


def test_openapi_declares_the_problems(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"404", "409", "422"} <= set(paths["/v1/segments/{segment_id}"]["patch"]["responses"])
    assert "409" in paths["/v1/segments"]["post"]["responses"]
