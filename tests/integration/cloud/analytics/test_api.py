"""/v1/analytics over the served API: the worked example of docs/analytics.md computed by
hand, unknown properties refused naming the field, roles, bounds and the OpenAPI document."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from tests.integration.cloud.analytics.world import BASE, World

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def example(database_url: str) -> World:
    """The people of the worked example in docs/analytics.md, committed."""
    conn = psycopg.connect(database_url)
    world = World(conn)
    # ann, bob, eve: profiles; dee: a profile merged into eve; cy: anonymous; fay, gus
    world.add_people(["p", "p", "a", "p", "m", "p", "p"])
    ann, bob, cy, eve, dee, fay, gus = range(7)

    def h(hours: int, minutes: int = 0) -> datetime:
        return BASE + timedelta(hours=hours, minutes=minutes)

    for who, ev, at, props in [
        (ann, "view", h(10), {"plan": "pro"}), (ann, "cart", h(10, 20), {}),
        (ann, "buy", h(10, 50), {}),
        (bob, "view", h(9), {"plan": "free"}), (bob, "view", h(10), {"plan": "pro"}),
        (bob, "cart", h(10, 30), {}), (bob, "buy", h(11), {}),
        (cy, "view", h(12), {}), (cy, "buy", h(12, 10), {}), (cy, "cart", h(12, 20), {}),
        (dee, "view", h(23, 30), {"plan": "pro"}), (eve, "cart", h(23, 50), {}),
        (fay, "cart", h(8), {}), (gus, "view", h(24, 10), {"plan": "pro"}),
    ]:  # fmt: skip
        world.add(who, ev, at, props)
    conn.commit()
    conn.close()
    return world


def _funnel(world: World, **kw: Any) -> dict[str, Any]:
    return {
        "start": BASE.isoformat(),
        "end": (BASE + timedelta(days=1)).isoformat(),
        "steps": [{"event": world.name(s)} for s in ("view", "cart", "buy")],
        "window_seconds": 3600,
        **kw,
    }


def test_worked_example_strict_order(
    client: TestClient, marketer: dict[str, str], example: World
) -> None:
    r = client.post(
        "/v1/analytics/funnels", json=_funnel(example, breakdown="plan"), headers=marketer
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["count"] for s in body["total"]["steps"]] == [4, 4, 2]
    assert body["total"]["steps"][2]["conversion_from_first"] == 0.5
    ttc = body["total"]["time_to_convert"]
    assert (ttc["p25"], ttc["median"], ttc["p75"], ttc["p90"]) == (3150, 3300, 3450, 3540)
    assert {b["upto_seconds"]: b["count"] for b in ttc["histogram"] if b["count"]} == {3600: 2}
    groups = {g["breakdown_value"]: [s["count"] for s in g["steps"]] for g in body["breakdown"]}
    assert groups == {"pro": [2, 2, 1], "free": [1, 1, 1], None: [1, 1, 0]}


def test_worked_example_any_order_and_dropoffs(
    client: TestClient, marketer: dict[str, str], example: World
) -> None:
    r = client.post("/v1/analytics/funnels", json=_funnel(example, order="any"), headers=marketer)
    assert [s["count"] for s in r.json()["total"]["steps"]] == [4, 4, 3]
    assert r.json()["total"]["time_to_convert"]["median"] == 3000
    r = client.post(
        "/v1/analytics/funnels/dropoffs", json=_funnel(example, step=2), headers=marketer
    )
    assert r.status_code == 200, r.text
    eve, cy = example.people[3], example.people[2]
    assert r.json()["people"] == [
        {"profile_id": eve[1], "anonymous_id": None},
        {"profile_id": None, "anonymous_id": cy[1]},
    ]


def test_paths_trends_and_retention_answer(
    client: TestClient, marketer: dict[str, str], example: World
) -> None:
    period = {"start": BASE.isoformat(), "end": (BASE + timedelta(days=2)).isoformat()}
    view = {"event": example.name("view")}
    r = client.post(
        "/v1/analytics/paths", json={**period, "event": view, "depth": 2}, headers=marketer
    )
    assert r.status_code == 200, r.text
    assert r.json()["people"] == 5  # ann, bob, cy, eve (as dee), gus
    r = client.post(
        "/v1/analytics/trends",
        json={**period, "event": view, "measure": "people", "breakdown": "plan"},
        headers=marketer,
    )
    assert r.status_code == 200, r.text
    assert [(s["breakdown_value"], s["total"]) for s in r.json()["series"]] == [
        ("pro", 4), ("free", 1), (None, 1),
    ]  # fmt: skip
    r = client.post(
        "/v1/analytics/retention",
        json={**period, "start_event": view, "return_event": {"event": example.name("buy")},
              "periods": 2},
        headers=marketer,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    (cohort,) = r.json()["cohorts"]
    assert cohort["size"] == 5 and [p["retained"] for p in cohort["periods"]] == [3, 0]


def test_an_unknown_property_is_a_422_naming_it(
    client: TestClient, marketer: dict[str, str], example: World
) -> None:
    body = _funnel(example)
    body["steps"][1]["filters"] = [{"property": "colour", "op": "eq", "value": "red"}]
    r = client.post("/v1/analytics/funnels", json=body, headers=marketer)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["field"] == "steps.1.filters.0.property"
    assert "'colour'" in r.json()["detail"]
    r = client.post(
        "/v1/analytics/funnels", json=_funnel(example, breakdown="size"), headers=marketer
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "breakdown"
    trend = {"start": BASE.isoformat(), "end": (BASE + timedelta(days=1)).isoformat(),
             "event": {"event": example.name("cart")}, "breakdown": "plan"}  # fmt: skip
    r = client.post("/v1/analytics/trends", json=trend, headers=marketer)
    assert r.status_code == 422 and "'plan'" in r.json()["detail"]


@pytest.mark.parametrize(
    "change",
    [
        {"end": BASE.isoformat()},  # empty period
        {"end": (BASE + timedelta(days=400)).isoformat()},
        {"window_seconds": 0},
        {"steps": [{"event": "x"}]},
        {"steps": [{"event": "x", "filters": [{"property": "n", "op": "gt", "value": "5"}]}] * 2},
        {"breakdown": ""},
    ],
)
def test_bounded_inputs_are_refused(
    client: TestClient, marketer: dict[str, str], example: World, change: dict[str, Any]
) -> None:
    r = client.post("/v1/analytics/funnels", json={**_funnel(example), **change}, headers=marketer)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM


def test_only_marketers_and_admins(client: TestClient, token_for: Any, example: World) -> None:
    r = client.post(
        "/v1/analytics/funnels",
        json=_funnel(example),
        headers=token_for(Role.STORE_MANAGER, {"s1"}),
    )
    assert r.status_code == 403
    assert client.post("/v1/analytics/funnels", json=_funnel(example)).status_code == 401
    r = client.post("/v1/analytics/funnels", json=_funnel(example), headers=token_for(Role.ADMIN))
    assert r.status_code == 200


def test_openapi_declares_the_analytics_problems(client: TestClient) -> None:
    doc = client.app.openapi()  # type: ignore[attr-defined]
    for path in ("/funnels", "/funnels/dropoffs", "/retention", "/paths", "/trends"):
        responses = doc["paths"][f"/v1/analytics{path}"]["post"]["responses"]
        assert {"200", "401", "403", "422", "503"} <= set(responses), path


def test_an_analysis_past_its_time_limit_is_a_503(
    client: TestClient, marketer: dict[str, str], example: World, monkeypatch: Any
) -> None:
    """The statement timeout covers the whole analysis; a cancelled query is a 503 problem."""
    from cloud.crm.analytics import repository

    monkeypatch.setattr(repository, "STATEMENT_TIMEOUT_MS", 1)
    monkeypatch.setattr(repository, "MERGED_CTE", psycopg.sql.SQL(
        "merged AS MATERIALIZED (SELECT id, crm_resolve_profile(id) AS root FROM crm_profiles"
        " WHERE merged_into IS NOT NULL AND pg_sleep(0.05) IS NOT NULL)"
    ))  # fmt: skip
    r = client.post("/v1/analytics/funnels", json=_funnel(example), headers=marketer)
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("/analysis-timeout")
