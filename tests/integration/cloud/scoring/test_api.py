"""The scoring API over the served app on real PostgreSQL: programmes (422 naming the field),
the incremental scorer, scores with explanations and history, MQL/SQL transitions with their
`score.threshold_crossed` domain events, rescoring after a rule change, dry run, qualify_lead,
and the journey endpoints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.domain_events import read_after
from cloud.core.security import Role
from cloud.crm.scoring.handlers import process_all, sweep
from tests.integration.cloud.scoring import world


@pytest.fixture
def marketer(token_for: Any) -> dict[str, str]:
    headers: dict[str, str] = token_for(Role.HQ_MARKETER, subject="marketer@hq")
    return headers


def _config(event: str) -> dict[str, Any]:
    return {
        "behaviour_rules": [
            {"key": "demo", "event": event, "points": 30, "daily_cap": 60},
            {
                "key": "pricing",
                "event": f"{event}-page",
                "points": 25,
                "repeat": "once",
                "filters": [{"property": "path", "op": "eq", "value": "/pricing"}],
            },
        ],
        "half_life_days": 30,
        "behaviour_max_points": 100,
        "fit": {"completeness_fields": ["email"], "completeness_points": 100},
        "weights": {"behaviour": 0.8, "fit": 0.2, "predictive": 0.0},
        "thresholds": {"mql": 40, "sql": 70, "hysteresis": 5},
    }


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    return body


def test_bad_rules_are_a_422_naming_the_field(client: TestClient, marketer: dict[str, str]) -> None:
    cfg = _config("x")
    cfg["behaviour_rules"][0]["filters"] = [{"property": "n", "op": "gt", "value": "ten"}]
    body = _problem(
        client.post(
            "/v1/scoring/programmes", json={"name": "bad", "config": cfg}, headers=marketer
        ),
        422,
    )
    assert any("behaviour_rules.0.filters.0" in e["field"] for e in body["errors"]), body
    cfg = _config("x")
    cfg["thresholds"] = {"mql": 80, "sql": 60}
    body = _problem(
        client.post(
            "/v1/scoring/programmes", json={"name": "bad", "config": cfg}, headers=marketer
        ),
        422,
    )
    assert "sql" in str(body["errors"])
    _problem(client.get("/v1/scoring/programmes/999999999", headers=marketer), 404)
    _problem(client.get("/v1/scoring/programmes", headers={}), 401)


def test_scores_levels_events_and_rescoring(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    ev = f"demo-{uuid.uuid4().hex[:8]}"
    name = f"leads-{uuid.uuid4().hex[:8]}"
    r = client.post(
        "/v1/scoring/programmes", json={"name": name, "config": _config(ev)}, headers=marketer
    )
    assert r.status_code == 201, r.text
    prog = r.json()["id"]
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        mark = int(conn.execute("SELECT coalesce(max(id), 0) FROM domain_events").fetchone()[0])  # type: ignore[index]
        hot = world.profile(conn, {"email": "hot@example.com"})
        cold = world.profile(conn, {})
        world.event(conn, hot, ev, now - timedelta(minutes=3))
        world.event(conn, hot, ev, now - timedelta(minutes=2))
        world.event(conn, hot, ev, now - timedelta(minutes=1))  # the daily cap (60) holds
        world.event(conn, hot, f"{ev}-page", now, {"path": "/pricing"})
        world.event(conn, hot, f"{ev}-page", now, {"path": "/pricing"})  # once only
        world.event(conn, cold, f"{ev}-page", now, {"path": "/about"})
    with psycopg.connect(database_url) as conn:
        process_all(conn)
    s = client.get(f"/v1/scoring/programmes/{prog}/profiles/{hot}", headers=marketer).json()
    # behaviour 85 points of 100 -> 85; fit 100; 0.8 * 85 + 0.2 * 100 = 88 -> sql
    assert s["behaviour"] == pytest.approx(85, abs=0.01)
    assert s["combined"] == pytest.approx(88, abs=0.01)
    assert s["level"] == "sql"
    assert s["contributions"][0]["key"] == "demo"
    assert {c["key"] for c in s["contributions"]} == {"demo", "pricing", "completeness"}
    assert s["contributions"][0]["points"] == pytest.approx(0.8 * 60, abs=0.01)
    c = client.get(f"/v1/scoring/programmes/{prog}/profiles/{cold}", headers=marketer).json()
    assert c["combined"] == 0 and c["level"] == "none"
    trans = client.get(f"/v1/scoring/programmes/{prog}/transitions", headers=marketer).json()
    assert [(t["profile_id"], t["level"], t["direction"]) for t in trans] == [
        (hot, "mql", "up"), (hot, "sql", "up")
    ]  # fmt: skip
    with psycopg.connect(database_url) as conn:
        events, _ = read_after(conn, watermark=mark, topics=["score.threshold_crossed"])
    mine = [e for e in events if e.payload["programme"] == name]
    assert [e.subject for e in mine] == [f"profile:{hot}"] * 2
    assert mine[0].payload == {
        "profile_id": hot, "programme": name, "score": pytest.approx(88, abs=0.01),
        "threshold": 40.0, "direction": "up", "level": "mql",
    }  # fmt: skip
    assert mine[1].payload["level"] == "sql" and mine[1].payload["threshold"] == 70.0
    hist = client.get(
        f"/v1/scoring/programmes/{prog}/profiles/{hot}/history", headers=marketer
    ).json()
    assert hist and hist[0]["combined"] == pytest.approx(88, abs=0.01)

    # A rule change: demo now gives 5 points; the sweep rescores from all events.
    cfg = _config(ev)
    cfg["behaviour_rules"][0]["points"] = 5
    r = client.put(f"/v1/scoring/programmes/{prog}", json={"config": cfg}, headers=marketer)
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["rescored_version"] == 0
    with psycopg.connect(database_url) as conn:
        assert sweep(conn) == 1  # sql -> mql
    s = client.get(f"/v1/scoring/programmes/{prog}/profiles/{hot}", headers=marketer).json()
    # 15 + 25 = 40 points -> 0.8 * 40 + 20 = 52: below sql - hysteresis, still mql
    assert s["combined"] == pytest.approx(52, abs=0.01)
    assert s["level"] == "mql"
    trans = client.get(
        f"/v1/scoring/programmes/{prog}/transitions?profile_id={hot}", headers=marketer
    ).json()
    assert (trans[-1]["level"], trans[-1]["direction"], trans[-1]["threshold"]) == (
        "sql",
        "down",
        65.0,
    )
    assert "rules changed" in trans[-1]["reason"]
    assert (
        client.get(f"/v1/scoring/programmes/{prog}", headers=marketer).json()["rescored_version"]
        == 2
    )

    q = client.post(
        "/v1/scoring/qualify",
        json={"profile_id": hot, "programme_id": prog, "threshold": 50},
        headers=marketer,
    )
    assert q.status_code == 200, q.text
    assert q.json()["qualified"] is True and q.json()["score"] == pytest.approx(52, abs=0.01)
    q = client.post(
        "/v1/scoring/qualify", json={"profile_id": hot, "programme_id": prog}, headers=marketer
    )
    assert q.json()["qualified"] is False  # the seed's default threshold is 70

    # Dry run: the old rules on these profiles, nothing saved.
    ids = [hot, cold, 999_999_999]
    before = client.get(f"/v1/scoring/programmes/{prog}/model", headers=marketer).json()
    d = client.post(
        "/v1/scoring/dry-run", json={"config": _config(ev), "profile_ids": ids}, headers=marketer
    )
    assert d.status_code == 200, d.text
    got = {p["profile_id"]: p for p in d.json()["profiles"]}
    assert got[hot]["combined"] == pytest.approx(88, abs=0.01) and got[hot]["level"] == "sql"
    assert d.json()["unknown"] == [999_999_999]
    s = client.get(f"/v1/scoring/programmes/{prog}/profiles/{hot}", headers=marketer).json()
    assert s["combined"] == pytest.approx(52, abs=0.01)
    m = client.get(f"/v1/scoring/programmes/{prog}/model", headers=marketer)
    # the dry run taught the model nothing (other tests' events may have taught it before)
    assert m.status_code == 200
    assert m.json()["metrics"]["samples_seen"] == before["metrics"]["samples_seen"]
    assert client.delete(f"/v1/scoring/programmes/{prog}", headers=marketer).status_code == 204


def test_journey_endpoints(client: TestClient, marketer: dict[str, str], database_url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        pid = world.profile(conn, {})
        conn.execute(
            "UPDATE crm_profiles SET lifecycle_stage = 'consideration' WHERE id = %s", (pid,)
        )
        conn.execute(
            "INSERT INTO crm_lifecycle_transitions (profile_id, from_stage, to_stage, reason,"
            " occurred_at) VALUES (%s, NULL, 'awareness', 't', %s), (%s, 'awareness',"
            " 'consideration', 't', %s)",
            (pid, now - timedelta(days=3), pid, now - timedelta(days=1)),
        )
        for d in (1, 2, 20):
            world.event(conn, pid, "view", now - timedelta(days=d))
    n = client.get(f"/v1/scoring/profiles/{pid}/next-stage", headers=marketer).json()
    assert n["stage"] == "consideration" and n["activity_30d"] == 3
    assert set(n["probabilities"]) == {"purchase", "retention", "advocacy", "stay"}
    assert sum(n["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    h = client.get(f"/v1/scoring/profiles/{pid}/health", headers=marketer).json()
    assert (
        0 <= h["score"] <= 100
        and h["momentum"] > 50
        and h["days_since_last"] == pytest.approx(1, abs=0.01)
    )
    f = client.get("/v1/scoring/journeys/flows", headers=marketer).json()
    assert {"source": "awareness", "target": "consideration"}.items() <= next(
        x for x in f["links"] if x["source"] == "awareness"
    ).items()
    assert client.get("/v1/scoring/journeys/paths", headers=marketer).status_code == 200
    rows = client.get("/v1/scoring/journeys/drop-off", headers=marketer).json()
    assert all(0 <= r["rate"] <= 1 for r in rows)
    _problem(
        client.get(
            "/v1/scoring/journeys/flows?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            headers=marketer,
        ),
        422,
    )
    _problem(client.get("/v1/scoring/profiles/999999999/health", headers=marketer), 404)
