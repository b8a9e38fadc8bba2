"""Attribution, ROI and store conversion through the API on the real database.

Each test works in a random stretch of 2011 that no other test writes to, so totals are exact
although the session database is shared."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.service import IngestService, Status
from cloud.ingest.validate import Incoming, Limits
from cloud.simulator.envelopes import window_envelope


@pytest.fixture
def world(client: TestClient, token_for: Any, pg_pool: Any) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    t0 = datetime(2011, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(0, 300) + 0.5)
    sid = f"at-{tag}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="Attribution", timezone="Asia/Shanghai")
        create_device(conn, store_id=sid, device_id=f"atd-{tag}")
    hq = token_for(Role.HQ_MARKETER, subject="marketer@hq")

    def touch(who: str, channel: str, days: float, campaign: str | None = None) -> int:
        body = {"channel": channel, "event": "click", "identifiers": {"email": f"{who}-{tag}@x.cn"},
                "occurred_at": (t0 + timedelta(days=days)).isoformat(),
                "properties": {"campaign": campaign} if campaign else {}}  # fmt: skip
        r = client.post("/v1/touchpoints", json=body, headers=hq)
        assert r.status_code == 201, r.text
        return int(r.json()["profile_id"])

    receipts = iter(range(1, 10**6))

    def sale(who: str, days: float, amount: str, currency: str = "CNY") -> int:
        body = {"store_id": sid, "external_id": f"r-{tag}-{next(receipts)}",
                "occurred_at": (t0 + timedelta(days=days)).isoformat(), "currency": currency,
                "total_amount": amount, "identifiers": {"email": f"{who}-{tag}@x.cn"}}  # fmt: skip
        r = client.post("/v1/transactions", json=body, headers=hq)
        assert r.status_code == 201, r.text
        return int(r.json()["profile_id"])

    return {"t0": t0, "store": sid, "device": f"atd-{tag}", "hq": hq, "tag": tag,
            "touch": touch, "sale": sale}  # fmt: skip


def _range(w: dict[str, Any], days: float = 60) -> dict[str, str]:
    return {"from": w["t0"].isoformat(), "to": (w["t0"] + timedelta(days=days)).isoformat()}


def test_credits_by_channel_for_every_model(client: TestClient, world: dict[str, Any]) -> None:
    w = world
    w["touch"]("ann", "email", 1, "spring")
    w["touch"]("ann", "web", 2, "spring")
    w["sale"]("ann", 3, "300.00")  # email > web -> 300
    w["touch"]("bo", "web", 1)
    w["sale"]("bo", 2, "100.00")  # web -> 100
    w["sale"]("cy", 2, "50.00")  # direct: no touch
    w["touch"]("di", "email", 5, "spring")  # never buys
    r = client.get("/v1/attribution", params={**_range(w), "lookback_days": 30}, headers=w["hq"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["conversions"], body["revenue"]) == (3, 450.0)
    assert (body["direct_conversions"], body["direct_revenue"]) == (1, 50.0)
    assert body["journeys_without_conversion"] == 1
    models = {m["model"]: {c["key"]: c for c in m["credits"]} for m in body["models"]}
    assert set(models) == {"first_touch", "last_touch", "linear", "time_decay",
                           "position_based", "markov", "shapley"}  # fmt: skip
    assert models["last_touch"]["web"]["revenue"] == 400.0
    assert models["first_touch"]["email"]["revenue"] == 300.0
    assert models["linear"]["email"]["revenue"] == 150.0
    assert models["linear"]["web"]["conversions"] == 1.5
    for credits in models.values():  # every model shares out the two attributed sales
        assert sum(c["conversions"] for c in credits.values()) == pytest.approx(2.0)
        assert sum(c["revenue"] for c in credits.values()) == pytest.approx(400.0)
    markov = next(m for m in body["models"] if m["model"] == "markov")
    assert set(markov["removal_effects"]) == {"email", "web"}
    params = {**_range(w), "by": "campaign", "model": "last_touch"}
    by_campaign = client.get("/v1/attribution", headers=w["hq"], params=params)
    keys = {c["key"] for c in by_campaign.json()["models"][0]["credits"]}
    assert keys == {"spring", "(none)"}


def test_roi_uses_costs_and_prefers_a_holdout(client: TestClient, world: dict[str, Any]) -> None:
    w = world
    camp = f"spring-{w['tag']}"
    pid = {who: w["touch"](who, "email", 1, camp) for who in ("ann", "bo")}
    pid["ann"] = w["sale"]("ann", 2, "200.00")
    pid["cy"] = w["sale"]("cy", 2, "40.00")
    cost = {"currency": "CNY", "fixed_cost": "80.00", "budget": "50.00"}
    put = client.put(f"/v1/attribution/costs/{camp}", headers=w["hq"], json=cost)
    assert put.status_code == 200, put.text
    roi = client.get("/v1/attribution/roi", params={**_range(w), "model": "last_touch"},
                     headers=w["hq"]).json()  # fmt: skip
    row = next(c for c in roi["campaigns"] if c["campaign"] == camp)
    assert (row["basis"], row["attributed_revenue"], row["cost"]) == ("attribution", 200.0, 80.0)
    assert (row["roas"], row["roi"], row["over_budget"]) == (2.5, 1.5, True)
    groups = {"treated": [pid["ann"], pid["bo"]], "held_out": [pid["cy"]]}
    hold = client.post(f"/v1/attribution/holdouts/{camp}", headers=w["hq"], json=groups)
    assert hold.json() == {"recorded": 3}
    again = client.post(f"/v1/attribution/holdouts/{camp}", headers=w["hq"],
                        json={"treated": [pid["cy"]], "held_out": []})  # fmt: skip
    assert again.json() == {"recorded": 0}  # a held-out person stays held out
    roi = client.get("/v1/attribution/roi", params={**_range(w), "model": "last_touch"},
                     headers=w["hq"]).json()  # fmt: skip
    row = next(c for c in roi["campaigns"] if c["campaign"] == camp)
    # treated: 200 over 2 people = 100 each; held out: 40 over 1; increment (100 - 40) x 2
    assert (row["basis"], row["incremental_revenue"], row["roas"]) == ("holdout", 120.0, 1.5)


def test_bad_input_is_a_problem_naming_it(client: TestClient, world: dict[str, Any]) -> None:
    w = world
    w["sale"]("ann", 1, "10.00")
    w["sale"]("bo", 1, "10.00", currency="USD")
    r = client.get("/v1/attribution", params=_range(w), headers=w["hq"])
    assert r.status_code == 422 and "currency" in r.json()["detail"]
    ok = client.get("/v1/attribution", params={**_range(w), "currency": "USD"}, headers=w["hq"])
    assert ok.status_code == 200 and ok.json()["revenue"] == 10.0
    backwards = {"from": _range(w)["to"], "to": _range(w)["from"]}
    r = client.get("/v1/attribution", params=backwards, headers=w["hq"])
    assert r.status_code == 422
    r = client.get("/v1/attribution", params={**_range(w), "model": "magic"}, headers=w["hq"])
    assert r.status_code == 422
    r = client.put("/v1/attribution/costs/x", json={"currency": "cny"}, headers=w["hq"])
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem")
    assert client.get("/v1/attribution", params=_range(w)).status_code == 401


def test_store_conversion_joins_footfall_and_sales(
    client: TestClient, world: dict[str, Any], pg_pool: Any, token_for: Any
) -> None:
    w = world
    svc = IngestService(pg_pool, Limits(max_age_s=100 * 365 * 86400.0))
    hour = w["t0"].replace(minute=0, second=0)  # 00:00 UTC = 08:00 in Shanghai
    windows = [(10, 30), (40, 10), (65, 25)]  # (minutes after the hour, people in)
    for seq, (minutes, n_in) in enumerate(windows, start=1):
        at = hour + timedelta(minutes=minutes)
        env = window_envelope(
            store_id=w["store"], device_id=w["device"], sequence=seq,
            start=at - timedelta(minutes=1), end=at, lines={"door": (n_in, 0)},
        )  # fmt: skip
        item = Incoming(env.SerializeToString(), "mqtt", store_id=w["store"], device_id=w["device"])
        assert svc.ingest([item])[0].status is Status.ACCEPTED
    days = (hour - w["t0"]).total_seconds() / 86400
    for who, minutes, amount in [("a", 15, "100.00"), ("b", 20, "60.00"), ("c", 70, "40.00")]:
        w["sale"](who, days + minutes / 1440, amount)
    params = {"from": hour.isoformat(), "to": (hour + timedelta(hours=2)).isoformat(),
              "bucket": "1h"}  # fmt: skip
    manager = token_for(Role.STORE_MANAGER, stores={w["store"]})
    r = client.get(f"/v1/stores/{w['store']}/conversion", params=params, headers=manager)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(p["visitors"], p["transactions"], p["conversion_rate"], p["average_basket"])
            for p in body["points"]] == [(40, 2, 0.05, 80.0), (25, 1, 0.04, 40.0)]  # fmt: skip
    first = datetime.fromisoformat(body["points"][0]["start"])
    assert first == hour and first.utcoffset() == timedelta(hours=8)  # the store's local hour
    assert (body["visitors"], body["transactions"], body["sales_per_visitor"]) == (65, 3, 3.08)
    other = token_for(Role.STORE_MANAGER, stores={"elsewhere"})
    assert client.get(f"/v1/stores/{w['store']}/conversion", headers=other).status_code == 403
    missing = client.get("/v1/stores/no-such-store/conversion", headers=w["hq"])
    assert missing.status_code == 404


def test_revenue_forecast_of_a_segment(client: TestClient, world: dict[str, Any]) -> None:
    w = world
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    who = w["sale"]("fc", (today - w["t0"]).total_seconds() / 86400 - 3, "70.00", "EUR")
    made = client.post("/v1/segments", headers=w["hq"],
                       json={"name": f"fc-{w['tag']}", "kind": "static"})  # fmt: skip
    assert made.status_code == 201, made.text
    seg = made.json()
    added = client.post(f"/v1/segments/{seg['id']}/members", headers=w["hq"],
                        json={"profile_ids": [who]})  # fmt: skip
    assert added.status_code in (200, 201), added.text
    r = client.get("/v1/attribution/forecast", headers=w["hq"],
                   params={"segment_id": seg["id"], "history_days": 60, "horizon_days": 14,
                           "currency": "EUR"})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["history_revenue"] == 70.0 and len(body["points"]) == 14
    assert all(p["lower"] <= p["revenue"] <= p["upper"] for p in body["points"])
    short = client.get("/v1/attribution/forecast", headers=w["hq"], params={"history_days": 7})
    assert short.status_code == 422
    missing = client.get("/v1/attribution/forecast", headers=w["hq"], params={"segment_id": 10**12})
    assert missing.status_code == 404
