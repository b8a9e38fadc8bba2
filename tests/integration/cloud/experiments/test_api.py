"""The experiments API on the real database: design checks (422 naming the field), lifecycle,
sticky assignment with exposures, namespaces, holdouts, stratification, and results whose
per-arm values equal a brute-force computation from the inserted rows."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from cloud.crm.experiments.repository import EXPOSURE_EVENT
from tests.integration.cloud.experiments.conftest import (
    HOUR,
    add_event,
    add_purchase,
    assigned_at,
)


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    return body


def _fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


def _design(tag: str, event: str, **over: Any) -> dict[str, Any]:
    body = {
        "key": f"exp-{tag}",
        "name": f"Experiment {tag}",
        "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
        "primary_metric": {"name": "buys", "kind": "conversion", "event": event},
    }
    body.update(over)
    return body


def _create(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> int:
    resp = client.post("/v1/experiments", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def test_weights_not_summing_to_one_is_a_422_naming_variants(
    client: TestClient, marketer: dict[str, str], tag: str
) -> None:
    bad = _design(tag, "x", variants=[{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.6}])
    body = _problem(client.post("/v1/experiments", json=bad, headers=marketer), 422)
    assert _fields(body) == ["body.variants"]
    assert "sum to 1" in body["errors"][0]["message"]


def test_a_metric_on_an_unknown_event_is_a_422_naming_it(
    client: TestClient, marketer: dict[str, str], tag: str, conn: Any, profiles: Any
) -> None:
    resp = client.post("/v1/experiments", json=_design(tag, f"nope-{tag}"), headers=marketer)
    assert _fields(_problem(resp, 422)) == ["body.primary_metric.event"]
    add_event(conn, profiles(1)[0], f"seen-{tag}", conn.execute("SELECT now()").fetchone()[0])
    ratio = {"name": "r", "kind": "ratio", "numerator": {"kind": "revenue"},
             "denominator": {"kind": "count", "event": f"nope-{tag}"}}  # fmt: skip
    body = _design(tag, f"seen-{tag}", guardrails=[ratio])
    resp = client.post("/v1/experiments", json=body, headers=marketer)
    assert _fields(_problem(resp, 422)) == ["body.guardrails.0.denominator.event"]
    resp = client.post("/v1/experiments", json=_design(tag, f"seen-{tag}", segment_id=2**62),
                       headers=marketer)  # fmt: skip
    assert _fields(_problem(resp, 422)) == ["body.segment_id"]


def test_no_exposures_is_a_422_and_lifecycle_conflicts_are_409(
    client: TestClient, marketer: dict[str, str], tag: str, conn: Any, profiles: Any
) -> None:
    add_event(conn, profiles(1)[0], f"e-{tag}", conn.execute("SELECT now()").fetchone()[0])
    eid = _create(client, marketer, _design(tag, f"e-{tag}"))
    body = _problem(client.get(f"/v1/experiments/{eid}/results", headers=marketer), 422)
    assert _fields(body) == ["exposures"]
    pid = profiles(1)[0]
    resp = client.post(f"/v1/experiments/{eid}/assign", json={"profile_id": pid}, headers=marketer)
    _problem(resp, 409)  # a draft assigns nobody
    assert client.post(f"/v1/experiments/{eid}/start", headers=marketer).json()["status"] == (
        "running"
    )
    _problem(client.post(f"/v1/experiments/{eid}/start", headers=marketer), 409)
    patch = {"design": {k: v for k, v in _design(tag, f"e-{tag}").items()
                        if k not in ("key", "name")}}  # fmt: skip
    _problem(client.patch(f"/v1/experiments/{eid}", json=patch, headers=marketer), 409)
    _problem(client.delete(f"/v1/experiments/{eid}", headers=marketer), 409)
    assert client.post(f"/v1/experiments/{eid}/stop", headers=marketer).status_code == 200
    assert client.delete(f"/v1/experiments/{eid}", headers=marketer).status_code == 204
    _problem(client.get(f"/v1/experiments/{eid}", headers=marketer), 404)


def _assign(client: TestClient, headers: dict[str, str], eid: int, pid: int, **attrs: Any) -> Any:
    resp = client.post(f"/v1/experiments/{eid}/assign",
                       json={"profile_id": pid, "attributes": attrs}, headers=headers)  # fmt: skip
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_assignment_is_sticky_sdk_compatible_and_writes_one_exposure(
    client: TestClient, marketer: dict[str, str], tag: str, conn: Any,
    profiles: Callable[..., list[int]],
) -> None:  # fmt: skip
    ids = profiles(120)
    add_event(conn, ids[0], f"e-{tag}", conn.execute("SELECT now()").fetchone()[0])
    eid = _create(client, marketer, _design(tag, f"e-{tag}", holdout=0.1))
    client.post(f"/v1/experiments/{eid}/start", headers=marketer)
    sdk = client.get(f"/v1/experiments/{eid}/sdk", headers=marketer).json()
    assert (sdk["key"], sdk["seed"], sdk["hashVersion"]) == (f"exp-{tag}", f"exp-{tag}", 2)
    first = {pid: _assign(client, marketer, eid, pid) for pid in ids}
    again = {pid: _assign(client, marketer, eid, pid) for pid in ids}
    reasons = Counter(a["reason"] for a in first.values())
    assert set(reasons) <= {"hashed", "holdout"} and reasons["holdout"] > 0
    for pid in ids:
        assert again[pid]["variant"] == first[pid]["variant"]
        assert again[pid]["reason"] in ("sticky", "holdout")
    exposures = conn.execute(
        "SELECT profile_id, properties->>'variant_key' FROM crm_events WHERE event = %s"
        " AND (properties->>'experiment_id')::bigint = %s",
        (EXPOSURE_EVENT, eid),
    ).fetchall()
    in_exp = {pid: a["variant_key"] for pid, a in first.items() if a["in_experiment"]}
    assert dict(exposures) == in_exp  # one each, none for the holdout
    results = client.get(f"/v1/experiments/{eid}/results", headers=marketer).json()
    assert results["holdout"] == reasons["holdout"]
    assert sum(e["n"] for e in results["exposures"]) == len(in_exp)
    _problem(client.post(f"/v1/experiments/{eid}/assign", json={"profile_id": 2**62},
                         headers=marketer), 422)  # fmt: skip


def test_namespaces_exclude_each_other_and_overlap_is_refused(
    client: TestClient, marketer: dict[str, str], tag: str, conn: Any, profiles: Any
) -> None:
    ids = profiles(120)
    add_event(conn, ids[0], f"e-{tag}", conn.execute("SELECT now()").fetchone()[0])
    ns = f"layer-{tag}"
    left = _create(client, marketer, _design(f"{tag}-l", f"e-{tag}",
                   namespace={"name": ns, "start": 0, "end": 0.5}))  # fmt: skip
    right = _create(client, marketer, _design(f"{tag}-r", f"e-{tag}",
                    namespace={"name": ns, "start": 0.5, "end": 1}))  # fmt: skip
    clash = _create(client, marketer, _design(f"{tag}-c", f"e-{tag}",
                    namespace={"name": ns, "start": 0.4, "end": 0.6}))  # fmt: skip
    for eid in (left, right):
        assert client.post(f"/v1/experiments/{eid}/start", headers=marketer).status_code == 200
    _problem(client.post(f"/v1/experiments/{clash}/start", headers=marketer), 409)
    for pid in ids:
        a, b = _assign(client, marketer, left, pid), _assign(client, marketer, right, pid)
        assert a["in_experiment"] != b["in_experiment"]  # exactly one layer slot each


def test_segment_targeting_and_stratified_balance(
    client: TestClient, marketer: dict[str, str], tag: str, conn: Any, profiles: Any
) -> None:
    gold, silver = profiles(100, tier="gold"), profiles(100, tier="silver")
    outsider = profiles(1)[0]
    add_event(conn, gold[0], f"e-{tag}", conn.execute("SELECT now()").fetchone()[0])
    seg = client.post("/v1/segments", headers=marketer,
                      json={"name": f"members-{tag}", "kind": "static"}).json()["id"]  # fmt: skip
    client.post(f"/v1/segments/{seg}/members", headers=marketer,
                json={"profile_ids": gold + silver})  # fmt: skip
    eid = _create(client, marketer, _design(tag, f"e-{tag}", segment_id=seg, stratify_by="tier"))
    client.post(f"/v1/experiments/{eid}/start", headers=marketer)
    assert _assign(client, marketer, eid, outsider)["reason"] == "targeting"
    got = {pid: _assign(client, marketer, eid, pid)["variant"] for pid in gold + silver}
    for group in (gold, silver):
        assert Counter(got[p] for p in group) == {0: 50, 1: 50}
    assert _assign(client, marketer, eid, gold[0], tier="silver")["variant"] == got[gold[0]]


def test_results_equal_brute_force_over_the_rows(
    client: TestClient, marketer: dict[str, str], tag: str, conn: Any, profiles: Any
) -> None:
    ids = profiles(120)
    buy, visit = f"buy-{tag}", f"visit-{tag}"
    add_event(conn, ids[0], buy, conn.execute("SELECT now() - interval '30 days'").fetchone()[0])
    add_event(conn, ids[0], visit, conn.execute("SELECT now() - interval '30 days'").fetchone()[0])
    metrics = {
        "primary_metric": {"name": "buys", "kind": "conversion", "event": buy, "window_hours": 48},
        "guardrails": [
            {"name": "basket", "kind": "sum", "event": buy, "property": "amount",
             "window_hours": 48},
            {"name": "revenue per visit", "kind": "ratio", "window_hours": 48,
             "numerator": {"kind": "revenue"}, "denominator": {"kind": "count", "event": visit}},
        ],
        "analysis": {"cuped": False, "correction": "bh"},
    }  # fmt: skip
    eid = _create(client, marketer, _design(tag, buy, **metrics))
    client.post(f"/v1/experiments/{eid}/start", headers=marketer)
    for pid in ids:
        _assign(client, marketer, eid, pid)
    arms = assigned_at(conn, eid)
    truth: dict[int, dict[str, list[float]]] = {0: {}, 1: {}}
    for i, (pid, (variant, t0)) in enumerate(sorted(arms.items())):
        assert variant is not None
        buys = [t0 + HOUR * h for h in ((1, 47) if variant == 1 and i % 2 else (1,))]
        if i % 3 == 0:
            buys = []
        for at in buys:
            add_event(conn, pid, buy, at, amount=10 + i % 7)
        add_event(conn, pid, buy, t0 + HOUR * 49, amount=1000)  # after the window: ignored
        add_event(conn, pid, buy, t0 - HOUR * 5, amount="n/a")  # pre-period, not a number
        visits = 1 + i % 4
        for k in range(visits):
            add_event(conn, pid, visit, t0 + HOUR * (k + 2))
        revenue = 20.0 + (15 if variant == 1 else 0) + i % 5
        add_purchase(conn, pid, t0 + HOUR * 3, f"{revenue:.2f}")
        add_purchase(conn, pid, t0 + HOUR * 4, "5.00", kind="return")
        t = truth[variant]
        t.setdefault("conv", []).append(1.0 if buys else 0.0)
        t.setdefault("basket", []).append(sum(10 + i % 7 for _ in buys))
        t.setdefault("rev", []).append(revenue - 5)
        t.setdefault("visits", []).append(float(visits))
    resp = client.get(f"/v1/experiments/{eid}/results", headers=marketer)
    assert resp.status_code == 200, resp.text
    res = resp.json()
    by_name = {m["name"]: m for m in res["metrics"]}
    for v in (0, 1):
        t = truth[v]
        arm = {m: by_name[m]["arms"][v] for m in by_name}
        assert arm["buys"]["n"] == len(t["conv"])
        assert math.isclose(arm["buys"]["mean"], sum(t["conv"]) / len(t["conv"]))
        assert math.isclose(arm["basket"]["mean"], sum(t["basket"]) / len(t["basket"]))
        assert math.isclose(arm["revenue per visit"]["mean"], sum(t["rev"]) / sum(t["visits"]))
    comp = by_name["revenue per visit"]["comparisons"][0]
    assert comp["absolute"]["estimate"] > 0 and comp["p_value_adjusted"] is not None
    assert res["srm"]["p_value"] > 0.001
    assert "NaN" not in resp.text and "Infinity" not in resp.text
    from cloud.crm.experiments.tasks import run_snapshot

    settings = client.app.state.settings  # type: ignore[attr-defined]
    assert run_snapshot(settings) >= 1
    snaps = client.get(f"/v1/experiments/{eid}/snapshots", headers=marketer).json()
    assert len(snaps) == 1 and snaps[0]["results"]["metrics"][0]["name"] == "buys"


def test_sample_size_calculator(client: TestClient, marketer: dict[str, str]) -> None:
    body = {"metric_type": "proportion", "baseline": 0.1, "mde": 0.1, "daily_traffic": 1000}
    resp = client.post("/v1/experiments/sample-size", json=body, headers=marketer)
    assert resp.json() == {"per_variant": 14745, "total": 29490, "mde": 0.1,
                           "mde_absolute": resp.json()["mde_absolute"],
                           "effect_size": resp.json()["effect_size"], "days": 30}  # fmt: skip
    both = {**body, "sample_size_per_variant": 100}
    _problem(client.post("/v1/experiments/sample-size", json=both, headers=marketer), 422)


def test_automation_split_node_is_analysed(
    client: TestClient, marketer: dict[str, str], tag: str, conn: Any, profiles: Any
) -> None:
    if conn.execute("SELECT to_regclass('automation_split_assignments')").fetchone()[0] is None:
        return  # optional source: without the automation feature's table there is nothing
    ids = profiles(40)
    now = conn.execute("SELECT now() - interval '2 days'").fetchone()[0]
    add_event(conn, ids[0], f"e-{tag}", now - HOUR * 100)
    # a real workflow with a split node "split" (through the automation API, so its stored
    # definition is valid for every other reader of the shared database)
    definition = {
        "trigger": {"kind": "api"},
        "nodes": [
            {"id": "start", "type": "entry", "next": "split"},
            {"id": "split", "type": "split", "branches": [
                {"name": "a", "weight": 1, "next": "done"},
                {"name": "b", "weight": 1, "next": "done"}]},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip
    made = client.post("/v1/automation/workflows", headers=marketer,
                       json={"name": f"wf-{tag}", "definition": definition})  # fmt: skip
    assert made.status_code == 201, made.text
    wf = made.json()["id"]
    for i, pid in enumerate(ids):
        branch = "a" if i % 2 else "b"
        ex = conn.execute(
            "INSERT INTO automation_executions (workflow_id, version, profile_id, status, node_id,"
            " enrolled_at, updated_at) VALUES (%s, 1, %s, 'completed', 'split', %s, %s)"
            " RETURNING id",
            (wf, pid, now, now),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO automation_split_assignments (execution_id, workflow_id, version,"
            " node_id, profile_id, branch, assigned_at) VALUES (%s, %s, 1, 'split', %s, %s, %s)",
            (ex, wf, pid, branch, now),
        )
        if branch == "b" and i % 4 == 0:
            add_event(conn, pid, f"e-{tag}", now + HOUR)
    body = _design(tag, f"e-{tag}", source={"kind": "automation_split", "workflow_id": wf,
                   "node_id": "split"},
                   variants=[{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}])  # fmt: skip
    eid = _create(client, marketer, body)
    client.post(f"/v1/experiments/{eid}/start", headers=marketer)
    _problem(client.post(f"/v1/experiments/{eid}/assign", json={"profile_id": ids[0]},
                         headers=marketer), 409)  # fmt: skip
    res = client.get(f"/v1/experiments/{eid}/results", headers=marketer).json()
    arms = res["metrics"][0]["arms"]
    assert [a["n"] for a in arms] == [20, 20]
    assert [a["mean"] for a in arms] == [0.0, 0.5]
