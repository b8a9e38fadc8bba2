"""The automation API: create, validation 422s naming the node, roles, activate, enrol,
per-customer executions with "why here, what next", statistics with a holdout, dry run
without side effects, versions and migration."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from tests.integration.cloud.automation.world import chain, event, profile, template

pytestmark = pytest.mark.integration
BASE = "/v1/automation/workflows"
TASK = {"kind": "staff_task", "title": "call"}


@pytest.fixture
def hq(token_for: Any) -> dict[str, str]:
    """A marketer's headers."""
    headers: dict[str, str] = token_for(Role.HQ_MARKETER, subject="marketer@hq")
    return headers


@pytest.fixture
def db(database_url: str) -> Any:
    """An autocommit connection on the app's database."""
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def _name() -> str:
    return f"wf-{uuid.uuid4().hex[:8]}"


def _create(client: TestClient, hq: dict[str, str], definition: dict[str, Any]) -> Any:
    return client.post(BASE, json={"name": _name(), "definition": definition}, headers=hq)


@pytest.mark.parametrize(
    ("definition", "node", "code"),
    [
        (chain({"id": "a", "type": "action", "action": TASK, "next": "b"},
               {"id": "b", "type": "action", "action": TASK, "next": "a"}),
         "a", "cycle-without-wait"),
        (chain({"id": "a", "type": "action", "action": TASK, "next": None},
               {"id": "island", "type": "end"}), "island", "unreachable"),
        (chain({"id": "w", "type": "wait_event", "event": "open", "yes": None}),
         "w", "wait-without-timeout"),
        (chain({"id": "m", "type": "action", "action": {"kind": "send", "channel": "email",
                                                        "template": "no-such-template"}}),
         "m", "missing-template"),
        (chain({"id": "c", "type": "condition", "condition": {"kind": "segment",
                                                              "segment_id": 987654321}}),
         "c", "missing-segment"),
        (chain({"id": "a", "type": "action", "action": TASK},
               trigger={"kind": "segment", "segment_id": 987654321}), "trigger", "missing-segment"),
        (chain({"id": "a", "type": "action", "action": {"kind": "workflow",
                                                        "workflow_id": 987654321}}),
         "a", "missing-workflow"),
    ],
)  # fmt: skip
def test_an_invalid_definition_is_a_422_naming_the_node(
    client: TestClient, hq: dict[str, str], definition: dict[str, Any], node: str, code: str
) -> None:
    resp = _create(client, hq, definition)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    errors = resp.json()["errors"]
    assert {"node": node, "code": code} in [{"node": e["node"], "code": e["code"]} for e in errors]
    assert node in resp.json()["detail"]
    check = client.post("/v1/automation/validate", json={"definition": definition}, headers=hq)
    assert check.status_code == 200 and check.json()["valid"] is False
    assert node in [e["node"] for e in check.json()["errors"]]


def test_a_schema_error_names_the_node_field(client: TestClient, hq: dict[str, str]) -> None:
    bad = chain({"id": "a", "type": "split", "branches": [{"name": "x", "weight": -1}]})
    resp = _create(client, hq, bad)
    assert resp.status_code == 422
    assert any("nodes.1" in e["field"] for e in resp.json()["errors"])


def test_roles(client: TestClient, token_for: Any) -> None:
    assert client.get(BASE).status_code == 401
    manager = token_for(Role.STORE_MANAGER, stores={"s1"})
    assert client.get(BASE, headers=manager).status_code == 403


def test_lifecycle_of_a_workflow_through_the_api(
    client: TestClient, hq: dict[str, str], db: Any
) -> None:
    template(db, "api-hello")
    definition = chain(
        {"id": "hello", "type": "action", "action": {"kind": "send", "channel": "email",
                                                     "template": "api-hello"}},
        {"id": "wait", "type": "wait", "seconds": 86400},
        {"id": "task", "type": "action", "action": TASK},
        goal={"event": "api-purchase"}, holdout_percent=50,
    )  # fmt: skip
    created = _create(client, hq, definition)
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    assert created.json()["status"] == "draft" and created.json()["current_version"] == 1
    pids = [profile(db, f"api{n}-{uuid.uuid4().hex[:6]}@example.com") for n in range(12)]
    resp = client.post(f"{BASE}/{wid}/enrol", json={"profile_ids": pids[:1]}, headers=hq)
    assert resp.status_code == 409  # a draft does not enrol
    assert client.post(f"{BASE}/{wid}/status", json={"status": "active"},
                       headers=hq).json()["status"] == "active"  # fmt: skip
    resp = client.post(f"{BASE}/{wid}/enrol", json={"profile_ids": pids}, headers=hq)
    assert resp.status_code == 200, resp.text
    assert all(v is not None for v in resp.json()["executions"].values())
    again = client.post(f"{BASE}/{wid}/enrol", json={"profile_ids": pids[:1]}, headers=hq)
    assert again.json()["executions"] == {str(pids[0]): None}
    unknown = client.post(f"{BASE}/{wid}/enrol", json={"profile_ids": [2**62]}, headers=hq)
    assert unknown.status_code == 404

    from datetime import UTC, datetime

    from cloud.crm.automation.engine import run_due

    while run_due(db, now=datetime.now(UTC))[0]:
        pass
    for p in pids[:6]:
        event(db, p, "api-purchase", datetime.now(UTC))
    stats = client.get(f"{BASE}/{wid}/statistics", headers=hq)
    assert stats.status_code == 200, stats.text
    body = stats.json()
    treated, holdout = body["treated"], body["holdout"]
    assert treated["enrolled"] + holdout["enrolled"] == 12
    assert holdout["enrolled"] > 0 and treated["enrolled"] > 0  # 50 % holdout of 12
    assert body["nodes"]["hello"]["completed"] == treated["enrolled"]
    assert body["nodes"]["wait"]["waiting"] == treated["enrolled"]
    converted_holdout = sum(
        1 for p in pids[:6]
        if client.get(f"/v1/automation/customers/{p}/executions",
                      headers=hq).json()[0]["status"] == "holdout"
    )  # fmt: skip
    assert holdout["converted"] == converted_holdout
    mine = client.get(f"/v1/automation/customers/{pids[-1]}/executions", headers=hq).json()
    assert len(mine) == 1
    ex = mine[0]
    if ex["status"] == "waiting":
        assert ex["node_id"] == "wait"
        assert "then next -> task" in ex["explanation"]["next"]
        assert ex["explanation"]["path"][:2] == ["start:entered", "start:completed->next"]
    else:
        assert ex["status"] == "holdout" and "holdout" in ex["explanation"]["next"]

    v2 = chain({"id": "hold", "type": "wait", "seconds": 60},
               {"id": "task", "type": "action", "action": TASK})  # fmt: skip
    pub = client.put(f"{BASE}/{wid}/definition", json={"definition": v2}, headers=hq)
    assert pub.status_code == 200 and pub.json()["current_version"] == 2
    bad = client.post(f"{BASE}/{wid}/migrate", json={"from_version": 1, "mapping": {}}, headers=hq)
    assert bad.status_code == 422 and bad.json()["errors"][0]["node"] == "wait"
    ok = client.post(f"{BASE}/{wid}/migrate",
                     json={"from_version": 1, "mapping": {"wait": "hold"}}, headers=hq)  # fmt: skip
    assert ok.status_code == 200 and ok.json()["moved"] == treated["enrolled"]
    assert client.delete(f"{BASE}/{wid}/customers/{pids[-1]}", headers=hq).status_code == 204
    assert client.delete(f"{BASE}/{wid}", headers=hq).status_code == 204
    assert client.get(f"{BASE}/{wid}", headers=hq).status_code == 404


def test_dry_run_predicts_paths_without_side_effects(
    client: TestClient, hq: dict[str, str], db: Any
) -> None:
    gold = profile(db, tier="gold")
    silver = profile(db, tier="silver")
    definition = chain(
        {"id": "c", "type": "condition", "condition": {"kind": "attribute", "attribute": "tier",
         "op": "eq", "value": "gold"}, "yes": "vip", "no": "mark"},
        {"id": "vip", "type": "action", "action": TASK, "next": None},
        {"id": "mark", "type": "action", "action": {"kind": "set_attribute", "attribute": "dry",
                                                    "value": 1}},
    )  # fmt: skip
    before = db.execute("SELECT count(*) FROM automation_executions").fetchone()
    resp = client.post("/v1/automation/dry-run",
                       json={"definition": definition, "profile_ids": [gold, silver]},
                       headers=hq)  # fmt: skip
    assert resp.status_code == 200, resp.text
    paths = {p["profile_id"]: [s["node_id"] for s in p["path"]] for p in resp.json()["profiles"]}
    assert paths == {gold: ["start", "c", "vip"], silver: ["start", "c", "mark"]}
    assert db.execute("SELECT count(*) FROM automation_executions").fetchone() == before
    assert db.execute("SELECT attributes ? 'dry' FROM crm_profiles WHERE id = %s",
                      (silver,)).fetchone() == (False,)  # fmt: skip


def test_dry_run_of_an_invalid_graph_is_a_422(client: TestClient, hq: dict[str, str]) -> None:
    """A definition with no entry once made the dry run a 500."""
    body = {"definition": {"trigger": {"kind": "api"}, "nodes": [{"id": "a", "type": "end"}]}}
    resp = client.post("/v1/automation/dry-run", json=body, headers=hq)
    assert resp.status_code == 422 and resp.json()["errors"][0]["code"] == "entry"
