"""Rate limits on the real Redis: failed authentication locks an address (and a claimed
subject) out, expensive calls are limited per caller and per address, the counts are shared
by API replicas, and X-Forwarded-For counts only behind a trusted proxy."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import psycopg
import pytest

from cloud.core.security import Role, issue_token
from cloud.core.settings import Settings
from cloud.db.repositories.auth import create_api_key
from cloud.db.repositories.devices import create_store
from tests.fixtures.services import REDIS_URL
from tests.integration.cloud.security.auth_apps import (
    OLD_SECRET,
    app_client,
    auth_settings,
    bearer,
)

WHO = "/v1/stores"
PEER = ("198.51.100.7", 40000)
OTHER_PEER = ("198.51.100.8", 40000)


@pytest.fixture
def limited(database_url: str, redis_client: Any) -> Settings:
    """Limits on, counted in the test Redis under this test's own key prefix."""
    return auth_settings(
        database_url,
        ratelimit_enabled=True,
        ratelimit_storage="redis",
        redis_url=REDIS_URL,
        ratelimit_key_prefix=redis_client.test_prefix + "rl",
        ratelimit_auth_failures="5/minute",
        ratelimit_expensive="3/minute",
    )


@pytest.fixture
def api_key(database_url: str) -> str:
    """A valid hq_marketer API key."""
    with psycopg.connect(database_url) as conn:
        return create_api_key(conn, name=f"rl-{uuid.uuid4().hex[:6]}", role=Role.HQ_MARKETER)[1]


def _assert_problem_429(res: Any) -> None:
    assert res.status_code == 429, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    body = res.json()
    assert body["type"].endswith("/rate-limited") and body["status"] == 429
    assert 1 <= int(res.headers["retry-after"]) <= 60


def test_wrong_api_keys_are_locked_out(
    limited: Settings, pg_pool: Any, api_key: str, redis_client: Any
) -> None:
    with app_client(limited, pg_pool, client=PEER) as c:
        answers = [c.get(WHO, headers={"X-API-Key": f"mp_guess{i}"}) for i in range(300)]
        assert Counter(r.status_code for r in answers) == {401: 5, 429: 295}
        _assert_problem_429(answers[-1])
        # locked out: even the right key from that address waits for the window to pass
        _assert_problem_429(c.get(WHO, headers={"X-API-Key": api_key}))
    with app_client(limited, pg_pool, client=OTHER_PEER) as c:
        assert c.get(WHO, headers={"X-API-Key": api_key}).status_code == 200
    assert list(redis_client.scan_iter(match=redis_client.test_prefix + "rl*"))


def test_the_lockout_is_shared_by_api_replicas(limited: Settings, pg_pool: Any) -> None:
    with app_client(limited, pg_pool, client=PEER) as first:
        for i in range(5):
            assert first.get(WHO, headers={"X-API-Key": f"mp_x{i}"}).status_code == 401
    with app_client(limited, pg_pool, client=PEER) as second:  # another replica, same Redis
        _assert_problem_429(second.get(WHO, headers={"X-API-Key": "mp_y"}))


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    limited: Settings, pg_pool: Any
) -> None:
    with app_client(limited, pg_pool, client=PEER) as c:  # no trusted proxy: header ignored
        codes = [c.get(WHO, headers={"X-API-Key": "mp_z", "X-Forwarded-For": f"203.0.113.{i}"})
                 for i in range(6)]  # fmt: skip
        assert [r.status_code for r in codes] == [401] * 5 + [429]
    fresh_counts = limited.ratelimit_key_prefix + "p"
    behind = limited.model_copy(
        update={"trusted_proxies": "198.51.100.0/24", "ratelimit_key_prefix": fresh_counts}
    )
    with app_client(behind, pg_pool, client=PEER) as c:
        for _ in range(5):
            xff = {"X-API-Key": "mp_z", "X-Forwarded-For": "203.0.113.9"}
            assert c.get(WHO, headers=xff).status_code == 401
        # a client-made entry in front of the proxy's own does not get it a fresh count
        spoof = {"X-API-Key": "mp_z", "X-Forwarded-For": "10.9.9.9, 203.0.113.9"}
        _assert_problem_429(c.get(WHO, headers=spoof))
        other = {"X-API-Key": "mp_z", "X-Forwarded-For": "203.0.113.10"}
        assert c.get(WHO, headers=other).status_code == 401


def test_failures_for_one_claimed_subject_lock_that_subject(
    limited: Settings, pg_pool: Any
) -> None:
    forged = jwt.encode({"sub": "ann", "role": "admin"}, OLD_SECRET, algorithm="HS256")
    for i in range(5):
        with app_client(limited, pg_pool, client=(f"192.0.2.{i + 1}", 1)) as c:
            assert c.get(WHO, headers=bearer(forged)).status_code == 401
    good = issue_token(limited, subject="ann", role=Role.HQ_MARKETER)
    other = issue_token(limited, subject="bob", role=Role.HQ_MARKETER)
    with app_client(limited, pg_pool, client=("192.0.2.99", 1)) as c:
        _assert_problem_429(c.get(WHO, headers=bearer(good)))
        assert c.get(WHO, headers=bearer(other)).status_code == 200


def test_imports_are_limited_per_caller_and_per_address(limited: Settings, pg_pool: Any) -> None:
    csv = {"Content-Type": "text/csv"}
    ann = {**csv, **bearer(issue_token(limited, subject="ann", role=Role.HQ_MARKETER))}
    bob = {**csv, **bearer(issue_token(limited, subject="bob", role=Role.HQ_MARKETER))}
    path = "/v1/customers/import"
    with app_client(limited, pg_pool, client=PEER) as c:
        for _ in range(3):
            assert c.post(path, content=b"email\n", headers=ann).status_code != 429
        _assert_problem_429(c.post(path, content=b"email\n", headers=ann))
        _assert_problem_429(c.post(path, content=b"email\n", headers=bob))  # same address
        assert c.get(WHO, headers=ann).status_code == 200  # cheap calls are not limited
    with app_client(limited, pg_pool, client=OTHER_PEER) as c:
        _assert_problem_429(c.post(path, content=b"email\n", headers=ann))  # same caller
        assert c.post(path, content=b"email\n", headers=bob).status_code != 429


def test_only_long_history_ranges_count_as_expensive(limited: Settings, pg_pool: Any) -> None:
    sid = f"rl-{uuid.uuid4().hex[:8]}"
    with pg_pool.connection() as conn:
        create_store(conn, store_id=sid, name="Limits", timezone="UTC")
    auth = bearer(issue_token(limited, subject="ann", role=Role.ADMIN))
    now = datetime.now(UTC)
    path = f"/v1/stores/{sid}/footfall"

    def ask(days: int) -> Any:
        start = (now - timedelta(days=days)).isoformat()
        return c.get(path, params={"from": start, "bucket": "1d"}, headers=auth)

    with app_client(limited, pg_pool, client=PEER) as c:
        assert all(ask(7).status_code == 200 for _ in range(6))
        assert all(ask(200).status_code == 200 for _ in range(3))
        _assert_problem_429(ask(200))


def test_memory_storage_limits_one_process(database_url: str, pg_pool: Any) -> None:
    demo = auth_settings(database_url, ratelimit_enabled=True, ratelimit_storage="memory",
                         redis_url="redis://127.0.0.1:1/0",
                         ratelimit_auth_failures="3/minute")  # fmt: skip
    with app_client(demo, pg_pool, client=PEER) as c:
        codes = [c.get(WHO, headers={"X-API-Key": "mp_q"}).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_unreachable_redis_lets_calls_through_and_says_so(
    database_url: str, pg_pool: Any, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    down = auth_settings(database_url, ratelimit_enabled=True, redis_url="redis://127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING), app_client(down, pg_pool, client=PEER) as c:
        assert c.get(WHO, headers={"X-API-Key": "mp_nope"}).status_code == 401
        assert c.get(WHO, headers={"X-API-Key": api_key}).status_code == 200
    assert any("rate-limit storage unavailable" in r.getMessage() for r in caplog.records)
