"""A 2xx means committed: over a real HTTP server, a write is visible to the very next request,
and a write whose COMMIT fails answers with a problem body instead of 201."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx
import psycopg
import pytest
import uvicorn

from cloud.core.security import Role
from cloud.core.settings import Settings


def _serve(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a loopback port in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def live_server(settings: Settings, pg_pool: Any) -> Iterator[str]:
    """The real app on the session database."""
    from cloud.api.app import create_app

    yield from _serve(create_app(settings, pool=pg_pool))


def test_a_created_customer_is_there_for_the_next_request(live_server: str, token_for: Any) -> None:
    """POST then an immediate GET, 200 times: every GET finds what the 201 announced."""
    headers = token_for(Role.HQ_MARKETER)
    tag = uuid.uuid4().hex[:8]
    missing = []
    with httpx.Client(base_url=live_server, headers=headers, timeout=30) as http:
        for i in range(200):
            res = http.post("/v1/customers", json={"identifiers": {"email": f"r{i}-{tag}@x.org"}})
            assert res.status_code == 201, res.text
            profile_id = res.json()["profile_id"]
            got = http.get(f"/v1/customers/{profile_id}")
            if got.status_code != 200:
                missing.append((i, got.status_code))
    assert missing == []


_TRIGGER = """
CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rejected at commit' USING ERRCODE = '{code}';
END $$;
CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON crm_records
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.attributes->>'first_name' = 'Failcommit') EXECUTE FUNCTION fail_at_commit();
"""


@pytest.mark.parametrize(
    ("sqlstate", "status", "slug"),
    [
        ("P0001", 503, "commit-failed"),  # a deferred check of any kind
        ("40001", 409, "conflict"),  # serialization failure: the client may retry
        ("23505", 409, "conflict"),  # a deferred unique constraint
    ],
)
def test_a_commit_that_fails_is_an_error_not_201(
    fresh_database: Callable[..., str],
    token_for: Any,
    settings: Settings,
    sqlstate: str,
    status: int,
    slug: str,
) -> None:
    """A constraint checked only at COMMIT rejects the write: the answer says nothing was saved."""
    from cloud.api.app import create_app

    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(_TRIGGER.replace("{code}", sqlstate))
    app = create_app(settings.model_copy(update={"database_url": url}))
    email = f"fail-{uuid.uuid4().hex[:8]}@x.org"
    body = {"identifiers": {"email": email}, "attributes": {"first_name": "Failcommit"}}
    for base in _serve(app):
        with httpx.Client(base_url=base, headers=token_for(Role.HQ_MARKETER), timeout=30) as http:
            res = http.post("/v1/customers", json=body)
            assert res.status_code == status, res.text
            assert res.headers["content-type"].startswith("application/problem+json")
            problem = res.json()
            assert problem["type"].endswith(slug) and "nothing was saved" in problem["detail"]
            ok = http.post("/v1/customers", json={"identifiers": {"email": f"ok-{email}"}})
            assert ok.status_code == 201, ok.text  # the pool's connection is usable again
    with psycopg.connect(url) as c:
        stored = c.execute(
            "SELECT count(*) FROM crm_identifiers WHERE value = %s", (email,)
        ).fetchone()
    assert stored == (0,)


def test_an_import_whose_commit_fails_is_an_error_not_200(
    fresh_database: Callable[..., str], token_for: Any, settings: Settings
) -> None:
    """The CSV import commits in its own block: a COMMIT refused there is a 503 problem too."""
    from cloud.api.app import create_app

    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(_TRIGGER.replace("{code}", "P0001"))
    app = create_app(settings.model_copy(update={"database_url": url}))
    email = f"imp-{uuid.uuid4().hex[:8]}@x.org"
    csv_body = f"email,first_name\n{email},Failcommit\n".encode()
    headers = {**token_for(Role.HQ_MARKETER), "Content-Type": "text/csv"}
    for base in _serve(app):
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            res = http.post("/v1/customers/import", content=csv_body)
            assert res.status_code == 503, res.text
            assert res.headers["content-type"].startswith("application/problem+json")
            assert "nothing was saved" in res.json()["detail"]
    with psycopg.connect(url) as c:
        stored = c.execute(
            "SELECT count(*) FROM crm_identifiers WHERE value = %s", (email,)
        ).fetchone()
    assert stored == (0,)
