"""The predictive API end to end: CRM sales -> Celery tasks (learn, fit CLV, score) -> endpoints."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.core.security import Role, issue_token
from cloud.core.settings import Settings
from cloud.crm.transactions import record_transaction
from tests.fixtures.services import _create_database, _drop_database

from .conftest import START, STORE

SECRET = "ml-api-secret-6419141c349984bebf288ebe8004b997d45210a7f05ca398"


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    """A private database with two years of sales of 40 customers, learnt, fitted and scored."""
    url = _create_database(migrate=True)
    rng = random.Random(11)
    profiles: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO stores (id, name) VALUES (%s, 'ML API store')", (STORE,))
        sales = []
        for i in range(40):
            first = rng.uniform(0, 60)
            days = [first + 14 * k for k in range(30)] if i % 2 else [first, first + 200]
            sales += [(d, f"P{i}") for d in days if d < 400]
        for n, (day, cust) in enumerate(sorted(sales)):
            res = record_transaction(
                conn,
                store_id=STORE,
                external_id=f"R{n}",
                occurred_at=START + timedelta(days=day),
                currency="USD",
                total_amount=Decimal(f"{rng.uniform(5, 80):.2f}"),
                identifiers={"pos_customer_id": cust},
                earn_points=False,
            )
            profiles[cust] = res.profile_id
        conn.commit()
    yield {"url": url, "profiles": profiles}
    _drop_database(url)


@pytest.fixture(scope="module")
def trained(world: dict[str, Any]) -> dict[str, Any]:
    """Run the Celery tasks in-process (eagerly) against the private database."""
    from cloud.workers import ml_tasks

    mp = pytest.MonkeyPatch()
    mp.setenv("MALLPULSE_DATABASE_URL", world["url"])
    mp.setenv("MALLPULSE_ML_CHURN_HORIZON_DAYS", "60")
    mp.setenv("MALLPULSE_ML_CHURN_SNAPSHOT_DAYS", "15")
    try:
        learnt = ml_tasks.learn_churn.apply().get()
        fits = ml_tasks.fit_clv.apply().get()
        scored = ml_tasks.score_all.apply().get()
    finally:
        mp.undo()
    return {**world, "learnt": learnt, "fits": fits, "scored": scored}


@pytest.fixture(scope="module")
def api(trained: dict[str, Any]) -> Iterator[TestClient]:
    from cloud.api.app import create_app

    settings = Settings(
        database_url=trained["url"],
        jwt_secret=SECRET,
        ml_churn_horizon_days=60,
        ml_churn_snapshot_days=15,
        ratelimit_enabled=False,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _auth(role: Role, stores: set[str] | None = None) -> dict[str, str]:
    settings = Settings(jwt_secret=SECRET)
    return {
        "Authorization": "Bearer "
        + issue_token(settings, subject="t", role=role, store_ids=stores or set())
    }


def test_tasks_learnt_fitted_and_scored_everyone(trained: dict[str, Any]) -> None:
    assert trained["learnt"]["applied"] > 400 and trained["learnt"]["rejected"] == 0
    assert trained["learnt"]["scored"] == 40
    assert [f["scope"] for f in trained["fits"]] == ["all"]  # one store below the per-store minimum
    assert trained["fits"][0]["bgnbd"]["r"] > 0
    assert trained["scored"] == 40


def test_customer_prediction_ranks_the_lapsed_above_the_loyal(
    api: TestClient, trained: dict[str, Any]
) -> None:
    hq = _auth(Role.HQ_MARKETER)
    loyal = api.get(f"/v1/predictions/customers/{trained['profiles']['P1']}", headers=hq)
    lapsed = api.get(f"/v1/predictions/customers/{trained['profiles']['P0']}", headers=hq)
    assert loyal.status_code == lapsed.status_code == 200, loyal.text
    a, b = loyal.json(), lapsed.json()
    assert b["churn_probability"] > a["churn_probability"]
    assert a["health_score"] > b["health_score"]
    assert (
        b["segment"] == "lapsed"
        and b["reasons"]
        and b["action"]["kind"] in ("offer", "points_bonus", "message", "none")
    )
    assert a["clv"] is not None and a["clv"] > (b["clv"] or 0.0)
    assert a["model_version"] >= 1 and a["store_id"] == STORE


def test_prediction_errors_are_problems(api: TestClient) -> None:
    hq = _auth(Role.HQ_MARKETER)
    missing = api.get("/v1/predictions/customers/999999999", headers=hq)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/predictions/customers/1").status_code == 401
    mgr = _auth(Role.STORE_MANAGER, {STORE})
    assert api.get("/v1/predictions/customers/1", headers=mgr).status_code == 403


def test_at_risk_list_is_ranked_and_filtered(api: TestClient) -> None:
    hq = _auth(Role.HQ_MARKETER)
    res = api.get("/v1/risk/customers", params={"min_churn": 0.0, "limit": 100}, headers=hq)
    assert res.status_code == 200, res.text
    items = res.json()["items"]
    assert len(items) == 40
    values = [i["risk_value"] for i in items]
    assert values == sorted(values, reverse=True)
    lapsed = api.get(
        "/v1/risk/customers", params={"segment": "lapsed", "min_churn": 0.0}, headers=hq
    ).json()["items"]
    assert lapsed and all(i["segment"] == "lapsed" for i in lapsed)
    other = api.get("/v1/risk/customers", params={"store_id": "nope"}, headers=hq)
    assert other.json()["items"] == []
    mgr = _auth(Role.STORE_MANAGER, {STORE})
    mine = api.get("/v1/risk/customers", params={"store_id": STORE}, headers=mgr)
    assert mine.status_code == 200 and mine.json()["items"]
    assert api.get("/v1/risk/customers", headers=mgr).status_code == 403
    assert api.get("/v1/risk/customers", params={"store_id": "x"}, headers=mgr).status_code == 403
    bad = api.get("/v1/risk/customers", params={"min_churn": 2}, headers=hq)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.min_churn"


def test_model_status_and_admin_reset(api: TestClient) -> None:
    hq = _auth(Role.HQ_MARKETER)
    listed = api.get("/v1/models", headers=hq).json()
    assert [m["name"] for m in listed] == ["churn"]
    status = api.get("/v1/models/churn", headers=hq).json()
    assert status["samples_seen"] > 100 and status["customers"] == 40
    assert status["metrics"]["roc_auc"] is not None and status["watermarks"]["crm_transactions"] > 0
    assert status["versions"][0]["version"] == status["version"]
    assert api.post("/v1/models/churn/reset", headers=hq).status_code == 403
    reset = api.post("/v1/models/churn/reset", headers=_auth(Role.ADMIN))
    assert reset.status_code == 200, reset.text
    after = reset.json()
    assert after["version"] == status["version"] + 1
    assert after["drift_events"][0]["reset"] is True
    assert api.get("/v1/models/nope", headers=hq).status_code == 404
