"""Footfall models learn the ingest rollup (line_counts_1h) and serve forecasts and anomalies."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from cloud.core.security import Role
from cloud.db.repositories import telemetry
from cloud.ml.footfall import service

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _seed(conn: psycopg.Connection[Any], store: str, days: int, spike_hour: int) -> None:
    """Hourly windows into line_counts, then the hourly rollup as each engine keeps it: ingest's
    upsert on plain PostgreSQL, a refresh of the continuous aggregate on TimescaleDB."""
    hourly: dict[tuple[str, str, datetime], list[int]] = {}
    for i in range(days * 24):
        h = i % 24
        people = round(60 * math.sin(math.pi * (h - 8) / 12)) if 8 <= h <= 20 else 0
        if i == spike_hour:
            people += 400
        for line, share in (("door-a", 0.6), ("door-b", 0.4)):
            if people:
                hourly[(store, line, T0 + timedelta(hours=i))] = [round(people * share), 0]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO line_counts VALUES (%s, 'gw', 'cam', %s, %s, %s + interval '1 hour',"
            " %s, %s)",
            [(s, line, t, t, n_in, n_out) for (s, line, t), (n_in, n_out) in hourly.items()],
        )
    if telemetry.rollup_is_table(conn):
        telemetry.add_hourly(conn, hourly)
        conn.commit()
        return
    conn.commit()
    # months back: far behind the refresh policy's window, so refresh that range explicitly
    conn.autocommit = True
    conn.execute(
        "CALL refresh_continuous_aggregate('line_counts_1h', %s::timestamptz, %s::timestamptz)",
        (T0, T0 + timedelta(days=days)),
    )
    conn.autocommit = False


def test_learns_once_flags_the_spike_and_serves_the_api(
    database_url: str, client: TestClient, token_for: Any
) -> None:
    store = f"ff-{uuid.uuid4().hex[:8]}"
    spike = 10 * 24 + 14
    with psycopg.connect(database_url) as conn:
        _seed(conn, store, days=14, spike_hour=spike)
        learnt = service.learn_store(conn, store_id=store)
        # from the first hour with counts (day 0, 09:00) up to the newest (day 13, 19:00), which
        # may still be filling and waits; quiet hours in between count as zero
        assert learnt == (13 * 24 + 19) - 9
        assert service.learn_store(conn, store_id=store) == 0  # exactly once
    mgr = token_for(Role.STORE_MANAGER, {store})
    res = client.get(f"/v1/stores/{store}/footfall/anomalies", headers=mgr)
    assert res.status_code == 200, res.text
    flagged = [datetime.fromisoformat(i["bucket_start"]) for i in res.json()["items"]]
    assert T0 + timedelta(hours=spike) in flagged
    assert len(flagged) <= 5
    fc = client.get(f"/v1/stores/{store}/footfall/forecast", params={"horizon": 12}, headers=mgr)
    assert fc.status_code == 200, fc.text
    body = fc.json()
    assert len(body["points"]) == 12 and body["trained_until"] is not None
    assert all(p["expected"] >= 0 for p in body["points"])
    other = token_for(Role.STORE_MANAGER, {"somewhere-else"})
    assert client.get(f"/v1/stores/{store}/footfall/forecast", headers=other).status_code == 403
    missing = client.get(
        "/v1/stores/no-such-store/footfall/forecast", headers=token_for(Role.ADMIN)
    )
    assert missing.status_code == 404
    bad = client.get(f"/v1/stores/{store}/footfall/forecast", params={"horizon": 0}, headers=mgr)
    assert bad.status_code == 422
