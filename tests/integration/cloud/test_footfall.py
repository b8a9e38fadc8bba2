"""Footfall API on the real database: live, history with last week, engagement, demographics,
chain views, roles and problem details."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.service import IngestService, Status
from cloud.ingest.validate import Incoming, Limits
from cloud.simulator.envelopes import window_envelope
from protos.mallpulse.v1 import telemetry_pb2

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def store(pg_pool: Any) -> dict[str, Any]:
    """A Berlin store with one device and an ingest function."""
    tag = uuid.uuid4().hex[:8]
    sid, dev = f"ff-{tag}", f"ffd-{tag}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="Alexa", timezone="Europe/Berlin")
        create_device(conn, store_id=sid, device_id=dev)
    svc = IngestService(pg_pool, Limits(max_age_s=100 * 365 * 86400.0))  # fixed-date tests
    seq = iter(range(1, 10**6))

    def send(end: datetime, **kw: Any) -> None:
        env = window_envelope(store_id=sid, device_id=dev, sequence=next(seq),
                              start=end - timedelta(seconds=1), end=end, **kw)  # fmt: skip
        item = Incoming(env.SerializeToString(), "mqtt", store_id=sid, device_id=dev)
        assert svc.ingest([item])[0].status is Status.ACCEPTED

    return {"id": sid, "device": dev, "send": send}


def _now_local() -> datetime:
    return datetime.now(UTC).astimezone(BERLIN)


def test_live_footfall(client: TestClient, token_for: Any, store: dict[str, Any]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    store["send"](now - timedelta(seconds=2), lines={"main": (4, 1), "side": (2, 0)},
                  zones={"floor": 9, "cafe": 3}, queues={"till": (4, 120.0)})  # fmt: skip
    store["send"](now, lines={"main": (1, 2)}, zones={"floor": 6})
    headers = token_for(Role.STORE_MANAGER, {store["id"]})
    body = client.get(f"/v1/stores/{store['id']}/footfall/live", headers=headers).json()
    assert body["occupancy"] == 9 and {z["zone_id"]: z["occupancy"] for z in body["zones"]} == {
        "cafe": 3, "floor": 6,
    }  # fmt: skip
    assert body["in_today"] == 7 and body["out_today"] == 3
    assert {e["line_id"]: e["in_count"] for e in body["entrances"]} == {"main": 5, "side": 2}
    assert body["queues"] == [
        {
            "zone_id": "till",
            "length": 4,
            "estimated_wait_s": 120.0,
            "as_of": body["queues"][0]["as_of"],
        }
    ]
    assert body["devices_total"] == 1 and body["timezone"] == "Europe/Berlin"


def test_history_buckets_in_store_time_with_last_week(
    client: TestClient, token_for: Any, store: dict[str, Any]
) -> None:
    midnight = _now_local().replace(hour=0, minute=0, second=0, microsecond=0)
    day = midnight - timedelta(days=1)  # yesterday, local
    store["send"]((day + timedelta(hours=10, minutes=20)).astimezone(UTC), lines={"main": (5, 0)})
    store["send"]((day + timedelta(hours=10, minutes=50)).astimezone(UTC), lines={"main": (3, 1)})
    store["send"]((day + timedelta(hours=13, minutes=5)).astimezone(UTC), lines={"main": (2, 2)})
    week = day - timedelta(days=7)
    store["send"]((week + timedelta(hours=10, minutes=30)).astimezone(UTC), lines={"main": (4, 0)})
    headers = token_for(Role.HQ_MARKETER)
    url = f"/v1/stores/{store['id']}/footfall"
    params = {"from": day.replace(tzinfo=None).isoformat(), "to": midnight.isoformat()}
    hourly = client.get(url, params={**params, "bucket": "1h"}, headers=headers).json()
    assert len(hourly["points"]) in (23, 24, 25)  # DST days have 23 or 25 hours
    by_hour = {datetime.fromisoformat(p["start"]).astimezone(BERLIN).hour: p for p in
               hourly["points"]}  # fmt: skip
    assert by_hour[10]["in_count"] == 8 and by_hour[10]["last_week_in"] == 4
    assert by_hour[13]["out_count"] == 2 and by_hour[11]["in_count"] == 0
    assert hourly["totals"]["in_count"] == 10 and hourly["totals"]["last_week_in"] == 4
    assert hourly["totals"]["change_in_pct"] == 150.0
    quarter = client.get(url, params={**params, "bucket": "15m"}, headers=headers).json()
    nonzero = [p["in_count"] for p in quarter["points"] if p["in_count"]]
    assert nonzero == [5, 3, 2]
    daily = client.get(url, params={**params, "bucket": "1d"}, headers=headers).json()
    assert [p["in_count"] for p in daily["points"]] == [10]
    assert datetime.fromisoformat(daily["points"][0]["start"]) == day


def test_engagement_and_demographics(
    client: TestClient, token_for: Any, store: dict[str, Any]
) -> None:
    now = datetime.now(UTC)
    female, male = telemetry_pb2.GENDER_FEMALE, telemetry_pb2.GENDER_MALE
    store["send"](now, shelves={"cereal": (4, 40.0)}, zones={"floor": 2},
                  demographics={(telemetry_pb2.AGE_BAND_25_34, female): 3,
                                (telemetry_pb2.AGE_BAND_65_PLUS, male): 1},
                  emotions={("floor", telemetry_pb2.VALENCE_POSITIVE): 3,
                            ("floor", telemetry_pb2.VALENCE_NEGATIVE): 1,
                            ("", telemetry_pb2.VALENCE_NEUTRAL): 2})  # fmt: skip
    headers = token_for(Role.ADMIN)
    eng = client.get(f"/v1/stores/{store['id']}/engagement", headers=headers).json()
    assert eng["shelves"] == [
        {"shelf_id": "cereal", "interactions": 4, "total_dwell_s": 40.0, "avg_dwell_s": 10.0}
    ]
    assert eng["zones"][0]["zone_id"] == "floor" and eng["zones"][0]["visits"] == 2
    demo = client.get(f"/v1/stores/{store['id']}/demographics", headers=headers).json()
    assert demo["total"] == 4
    assert {(c["age_band"], c["gender"]): c["count"] for c in demo["cells"]} == {
        ("25-34", "female"): 3, ("65+", "male"): 1,
    }  # fmt: skip
    assert demo["emotions"] == [
        {"zone_id": "", "people": 2, "positive": 0, "neutral": 2, "negative": 0,
         "positive_share": 0.0, "negative_share": 0.0},
        {"zone_id": "floor", "people": 4, "positive": 3, "neutral": 0, "negative": 1,
         "positive_share": 0.75, "negative_share": 0.25},
    ]  # fmt: skip


def test_chain_views_for_headquarters(
    client: TestClient, token_for: Any, store: dict[str, Any]
) -> None:
    store["send"](datetime.now(UTC), lines={"main": (6, 0)}, zones={"floor": 5})
    headers = token_for(Role.HQ_MARKETER)
    live = client.get("/v1/chain/live", headers=headers).json()
    mine = next(s for s in live["stores"] if s["store_id"] == store["id"])
    assert mine["occupancy"] == 5 and mine["in_today"] == 6
    totals = client.get("/v1/chain/footfall", headers=headers).json()
    assert next(s for s in totals["stores"] if s["store_id"] == store["id"])["in_count"] == 6


@pytest.mark.parametrize(
    ("path", "role", "stores"),
    [
        ("/footfall/live", Role.STORE_MANAGER, {"elsewhere"}),
        ("/footfall", Role.STORE_MANAGER, {"elsewhere"}),
        ("/footfall/stream", Role.STORE_MANAGER, {"elsewhere"}),
        ("/footfall/live", Role.DEVICE, None),
        ("/devices", Role.STORE_MANAGER, set()),
    ],
)
def test_store_access_is_forbidden(
    client: TestClient, token_for: Any, store: dict[str, Any], path: str, role: Role,
    stores: set[str] | None,
) -> None:  # fmt: skip
    res = client.get(f"/v1/stores/{store['id']}{path}", headers=token_for(role, stores))
    assert res.status_code == 403
    assert res.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/v1/chain/live", "/v1/chain/footfall"])
@pytest.mark.parametrize("role", [Role.DEVICE, Role.STORE_MANAGER])
def test_hq_views_refuse_devices_and_managers(
    client: TestClient, token_for: Any, path: str, role: Role
) -> None:
    assert client.get(path, headers=token_for(role, {"x"})).status_code == 403


def test_bad_requests_are_problems(
    client: TestClient, token_for: Any, store: dict[str, Any]
) -> None:
    h = token_for(Role.ADMIN)
    missing = client.get("/v1/stores/no-such-store/footfall/live", headers=h)
    assert missing.status_code == 404 and missing.json()["type"].endswith("/not-found")
    url = f"/v1/stores/{store['id']}/footfall"
    backwards = client.get(url, params={"from": "2026-01-02", "to": "2026-01-01"}, headers=h)
    assert backwards.status_code == 422 and "before" in backwards.json()["detail"]
    too_many = client.get(url, params={"from": "2024-01-01", "to": "2026-01-01", "bucket": "15m"},
                          headers=h)  # fmt: skip
    assert too_many.status_code == 422 and "buckets" in too_many.json()["detail"]
    bad_bucket = client.get(url, params={"bucket": "5m"}, headers=h)
    assert (
        bad_bucket.status_code == 422 and bad_bucket.json()["errors"][0]["field"] == "query.bucket"
    )


def test_store_and_device_registration(client: TestClient, token_for: Any) -> None:
    sid = f"reg-{uuid.uuid4().hex[:8]}"
    admin = token_for(Role.ADMIN)
    created = client.post("/v1/stores", json={"id": sid, "name": "New", "timezone": "Asia/Tokyo"},
                          headers=admin)  # fmt: skip
    assert created.status_code == 201
    again = client.post("/v1/stores", json={"id": sid, "name": "New"}, headers=admin)
    assert again.status_code == 409
    bad_tz = client.post("/v1/stores", json={"id": sid + "x", "name": "N", "timezone": "Mars/Base"},
                         headers=admin)  # fmt: skip
    assert bad_tz.status_code == 422
    dev = client.post(f"/v1/stores/{sid}/devices", json={"id": sid + "-gw"}, headers=admin)
    assert dev.status_code == 201 and dev.json()["credential"].startswith(f"mpd_{sid}-gw.")
    listed = client.get(f"/v1/stores/{sid}/devices", headers=token_for(Role.STORE_MANAGER, {sid}))
    assert [d["id"] for d in listed.json()] == [sid + "-gw"]
    mgr = client.get("/v1/stores", headers=token_for(Role.STORE_MANAGER, {sid}))
    assert [s["id"] for s in mgr.json()] == [sid]
    denied = client.post("/v1/stores", json={"id": "x1", "name": "x"},
                         headers=token_for(Role.HQ_MARKETER))  # fmt: skip
    assert denied.status_code == 403
    orphan = client.post("/v1/stores/nope-nope/devices", json={"id": "zz9"}, headers=admin)
    assert orphan.status_code == 404


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/chain/live"])
def test_device_token_cannot_call_the_crm(client: TestClient, token_for: Any, path: str) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert path in paths, f"{path} is not served by this app"
    res = client.get(path, headers=token_for(Role.DEVICE))
    assert res.status_code == 403 and res.json()["type"].endswith("/forbidden")


def test_half_hour_time_zone_gets_local_hours_and_days(
    client: TestClient, token_for: Any, pg_pool: Any
) -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    tag = uuid.uuid4().hex[:8]
    sid, dev = f"in-{tag}", f"ind-{tag}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="Mumbai", timezone="Asia/Kolkata")
        create_device(conn, store_id=sid, device_id=dev)
    svc = IngestService(pg_pool, Limits())
    today = datetime.now(UTC).astimezone(kolkata)
    day = today.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    # 10:10 and 10:50 local are one local hour but two UTC hours (04:40, 05:20 UTC)
    for seq, (minute, n_in) in enumerate([(10 * 60 + 10, 2), (10 * 60 + 50, 5)], start=1):
        end = (day + timedelta(minutes=minute)).astimezone(UTC)
        env = window_envelope(store_id=sid, device_id=dev, sequence=seq,
                              start=end - timedelta(minutes=1), end=end,
                              lines={"door": (n_in, 0)})  # fmt: skip
        svc.ingest([Incoming(env.SerializeToString(), "mqtt", store_id=sid, device_id=dev)])
    params = {"from": day.replace(tzinfo=None).isoformat(),
              "to": (day + timedelta(days=1)).replace(tzinfo=None).isoformat()}  # fmt: skip
    url = f"/v1/stores/{sid}/footfall"
    hourly = client.get(url, params={**params, "bucket": "1h"}, headers=token_for(Role.ADMIN))
    points = {datetime.fromisoformat(p["start"]).astimezone(kolkata).hour: p["in_count"]
              for p in hourly.json()["points"] if p["in_count"]}  # fmt: skip
    assert points == {10: 7}
    daily = client.get(url, params={**params, "bucket": "1d"}, headers=token_for(Role.ADMIN))
    assert [p["in_count"] for p in daily.json()["points"]] == [7]


def test_last_week_lines_up_by_local_hour_across_a_dst_change(
    client: TestClient, token_for: Any, store: dict[str, Any]
) -> None:
    # Berlin leaves summer time on 2026-10-25: last week's 10:00 CEST is 08:00 UTC, this
    # week's 10:00 CET is 09:00 UTC; "the same bucket last week" is the same local hour.
    day = datetime(2026, 10, 27, tzinfo=BERLIN)
    store["send"]((day + timedelta(hours=10, minutes=20)).astimezone(UTC), lines={"main": (5, 0)})
    week = datetime(2026, 10, 20, tzinfo=BERLIN)
    store["send"]((week + timedelta(hours=10, minutes=30)).astimezone(UTC), lines={"main": (4, 0)})
    params = {"from": "2026-10-27T00:00:00", "to": "2026-10-28T00:00:00"}
    url = f"/v1/stores/{store['id']}/footfall"
    headers = token_for(Role.HQ_MARKETER)
    for bucket in ("1h", "15m"):
        body = client.get(url, params={**params, "bucket": bucket}, headers=headers).json()
        at_ten = [p for p in body["points"] if p["last_week_in"]]
        assert [datetime.fromisoformat(p["start"]).astimezone(BERLIN).hour for p in at_ten] == [10]
        assert at_ten[0]["last_week_in"] == 4
        assert body["totals"]["last_week_in"] == 4 and body["totals"]["in_count"] == 5
