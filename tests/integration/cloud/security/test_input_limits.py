"""Input limits: free-form JSON bounded at the schema (422 naming the field) and a request body
limit at the server (413 problem), declared or streamed; the CSV import streams under its own
larger limit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.api.middleware import BodyLimitMiddleware
from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.importer import import_customers
from tests.integration.cloud.security.crm_helpers import (
    customer,
    headers,
    problem,
    touchpoint,
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


@pytest.fixture(scope="module")
def marketer(token_for: Any) -> dict[str, str]:
    """A headquarters marketer."""
    return headers(token_for, Role.HQ_MARKETER)


@pytest.fixture(scope="module")
def small(settings: Settings, pg_pool: Any) -> Iterator[TestClient]:
    """The API with small body limits: 4 KiB per call, 64 KiB for an import."""
    from cloud.api.app import create_app

    tight = settings.model_copy(update={"api_max_body_bytes": 4096, "api_max_import_bytes": 65536})
    with TestClient(create_app(tight, pool=pg_pool)) as c:
        yield c


def test_deeply_nested_properties_are_422_and_the_customer_stays_readable(
    client: TestClient, marketer: dict[str, str]
) -> None:
    """260 levels used to be stored (201) and then break GET /v1/customers/{id} for good."""
    pid, email = customer(client, marketer)
    res = client.post(
        "/v1/touchpoints", json=touchpoint(email, properties=_nested(260)), headers=marketer
    )
    body = problem(res, 422)
    assert [e["field"] for e in body["errors"]] == ["body.properties"]
    assert "deeper than 8" in body["errors"][0]["message"]
    fine = client.post(
        "/v1/touchpoints", json=touchpoint(email, properties=_nested(8)), headers=marketer
    )
    assert fine.status_code == 201, fine.text
    assert client.get(f"/v1/customers/{pid}", headers=marketer).status_code == 200
    found = client.get(
        "/v1/customers/lookup", params={"kind": "email", "value": email}, headers=marketer
    )
    assert found.status_code == 200


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({f"k{i}": i for i in range(201)}, "more than 200 keys"),
        ({"list": [{"a": 1, "b": 2}] * 101}, "more than 200 keys"),
        ({"text": "x" * 17_000}, "larger than 16384 bytes"),
        ({"list": [[[[[[[[[1]]]]]]]]]}, "deeper than 8"),
    ],
)
def test_wide_or_large_properties_are_422(
    client: TestClient, marketer: dict[str, str], properties: dict[str, Any], message: str
) -> None:
    _, email = customer(client, marketer)
    res = client.post(
        "/v1/touchpoints", json=touchpoint(email, properties=properties), headers=marketer
    )
    body = problem(res, 422)
    assert body["errors"][0]["field"] == "body.properties"
    assert message in body["errors"][0]["message"]


def test_device_config_document_is_bounded(client: TestClient, token_for: Any) -> None:
    """The other free-form JSON input of the API: a device's configuration document."""
    admin = headers(token_for, Role.ADMIN)
    res = client.post("/v1/devices/no-such-dev/config", json={"config": _nested(40)}, headers=admin)
    body = problem(res, 422)
    assert body["errors"][0]["field"] == "body.config"


def test_identifier_maps_and_attributes_are_bounded(
    client: TestClient, marketer: dict[str, str]
) -> None:
    many = {f"kind{i}": "x" for i in range(17)}
    res = client.post("/v1/customers", json={"identifiers": many}, headers=marketer)
    assert problem(res, 422)["errors"][0]["field"] == "body.identifiers"
    long_name = {"identifiers": {"email": "a@b.org"}, "attributes": {"first_name": "x" * 5000}}
    res = client.post("/v1/customers", json=long_name, headers=marketer)
    assert problem(res, 422)["errors"][0]["field"] == "body.attributes.first_name"


def test_body_over_the_limit_is_413_before_it_is_read(
    client: TestClient, marketer: dict[str, str]
) -> None:
    """A 2 MB touchpoint (valid JSON, padded with spaces) used to be accepted with a 201."""
    _, email = customer(client, marketer)
    data = json.dumps(touchpoint(email)).encode() + b" " * (2 * 1024 * 1024)
    res = client.post(
        "/v1/touchpoints",
        content=data,
        headers={**marketer, "Content-Type": "application/json"},
    )
    body = problem(res, 413)
    assert "1048576 bytes" in body["detail"] and body["instance"] == "/v1/touchpoints"
    assert body["request_id"] == res.headers["x-request-id"]


def test_chunked_body_over_the_limit_is_413(small: TestClient, marketer: dict[str, str]) -> None:
    """Without a Content-Length the body is counted as it streams."""
    _, email = customer(small, marketer)
    data = json.dumps(touchpoint(email)).encode() + b" " * 8192

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    res = small.post(
        "/v1/touchpoints",
        content=chunks(),
        headers={**marketer, "Content-Type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in res.request.headers}
    assert "4096 bytes" in problem(res, 413)["detail"]
    ok = small.post("/v1/touchpoints", json=touchpoint(email), headers=marketer)
    assert ok.status_code == 201, ok.text


def _csv(rows: int, tag: str) -> bytes:
    lines = ["email,first_name"] + [f"imp{i}.{tag}@example.org,N{i}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_import_has_its_own_larger_limit_and_streams(
    small: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    tag = uuid.uuid4().hex[:12]
    data = _csv(300, tag)  # ~10 KiB: over the 4 KiB of other routes, under the 64 KiB of imports
    assert 4096 < len(data) < 65536

    def chunks(payload: bytes) -> Iterator[bytes]:
        for i in range(0, len(payload), 777):
            yield payload[i : i + 777]

    hdr = {**marketer, "Content-Type": "text/csv"}
    res = small.post("/v1/customers/import", content=chunks(data), headers=hdr)
    assert res.status_code == 200, res.text
    assert res.json()["imported"] == 300
    big_tag = tag + "big"
    big = _csv(3000, big_tag)
    assert len(big) > 65536
    declared = small.post("/v1/customers/import", content=big, headers=hdr)
    assert "65536 bytes" in problem(declared, 413)["detail"]
    streamed = small.post("/v1/customers/import", content=chunks(big), headers=hdr)
    assert "65536 bytes" in problem(streamed, 413)["detail"]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM crm_identifiers WHERE value LIKE %s", (f"%.{big_tag}@%",)
        ).fetchone()
    assert row == (0,)


def test_importer_reads_chunks_and_checks_utf8_across_their_borders(database_url: str) -> None:
    """Multi-byte characters split between chunks are fine; a bad byte in a late chunk is a
    clear error, not a database error."""
    text = f"email,first_name\nzoë.{uuid.uuid4().hex[:12]}@example.org,Zoë\n"
    raw = text.encode()
    cut = raw.index("ë".encode()) + 1  # inside the two bytes of ë
    with psycopg.connect(database_url) as conn:
        report = import_customers(conn, iter([raw[:5], raw[5:cut], raw[cut:]]))
        assert (report.rows, report.imported) == (1, 1), report.errors
        bad = b"email,first_name\n" + b"a@b.org,ok\n" * 100 + b"c@d.org,Zo\xeb\n"
        with pytest.raises(CrmInvalidInputError, match="UTF-8"):
            import_customers(conn, iter([bad[:50], bad[50:]]))


async def _call(app_limit: int, body_chunks: list[bytes], declared: int | None) -> list[Any]:
    sent: list[Any] = []
    reads = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if not msg.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(body_chunks) - 1}
        for i, c in enumerate(body_chunks)
    ]

    async def receive() -> Any:
        nonlocal reads
        reads += 1
        return queue.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    hdrs = [] if declared is None else [(b"content-length", str(declared).encode())]
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": hdrs}
    await BodyLimitMiddleware(app, max_bytes=app_limit)(scope, receive, send)
    return [reads, *sent]


@pytest.mark.parametrize(
    ("chunks", "declared", "status", "reads"),
    [
        ([b"a" * 10], 10, 200, 1),
        ([b"a" * 10, b"b" * 10], None, 413, 2),  # chunked: counted, 413 at the second chunk
        ([b"a" * 30], 5, 413, 1),  # a lying Content-Length is counted too
        ([b"a" * 30], 30, 413, 0),  # declared too large: refused before any read
    ],
)
def test_body_limit_middleware_counts_what_streams(
    chunks: list[bytes], declared: int | None, status: int, reads: int
) -> None:
    import anyio

    out = anyio.run(_call, 15, chunks, declared)
    assert out[0] == reads  # chunks taken from the server
    assert out[1]["status"] == status
    if status == 413:
        assert json.loads(out[2]["body"])["type"].endswith("payload-too-large")


def test_properties_stored_too_deep_before_the_limit_are_quarantined(
    client: TestClient, marketer: dict[str, str], database_url: str
) -> None:
    """A customer whose touchpoint was stored 260 levels deep (before the limit) answered 500 for
    good; migration 0202 moves such properties aside and the customer reads again."""
    from importlib import resources

    from psycopg.types.json import Jsonb

    pid, _ = customer(client, marketer)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO crm_touchpoints (profile_id, record_id, channel, event, occurred_at,"
            " properties) SELECT %s, id, 'web', 'poisoned', now(), %s FROM crm_records"
            " WHERE profile_id = %s LIMIT 1 RETURNING id",
            (pid, Jsonb(_nested(260)), pid),
        ).fetchone()
    assert row is not None
    sql = resources.files("cloud.db.migrations").joinpath("0202_crm_security.sql").read_text()
    with psycopg.connect(database_url) as conn:
        conn.execute(sql.encode())  # the migration is safe to re-run
    assert client.get(f"/v1/customers/{pid}", headers=marketer).status_code == 200
    with psycopg.connect(database_url) as conn:
        kept = conn.execute(
            "SELECT properties, reason FROM crm_touchpoint_quarantine WHERE touchpoint_id = %s",
            (row[0],),
        ).fetchone()
        now = conn.execute(
            "SELECT properties FROM crm_touchpoints WHERE id = %s", (row[0],)
        ).fetchone()
    assert kept == (_nested(260), "nested deeper than 8 levels")
    assert now == ({"_quarantined": "crm_touchpoint_quarantine"},)


def test_customer_query_strings_are_bounded(client: TestClient, marketer: dict[str, str]) -> None:
    """A 5,000-character stage filter used to reach the database (200, an empty page)."""
    res = client.get("/v1/customers", params={"stage": "x" * 5000}, headers=marketer)
    assert problem(res, 422)["errors"][0]["field"] == "query.stage"
    res = client.get(
        "/v1/customers/lookup", params={"kind": "email", "value": "x" * 5000}, headers=marketer
    )
    assert problem(res, 422)["errors"][0]["field"] == "query.value"
