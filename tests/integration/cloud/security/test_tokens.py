"""Tokens and keys: lifetimes capped per role, revocation by jti, signing-key rotation, secret
strength, and API keys that expire, rotate and can be revoked (API and `mallpulse cloud`)."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import psycopg
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from cloud.core.errors import InvalidInputError
from cloud.core.security import Role, key_id, mint_token
from cloud.core.settings import Settings
from cloud.db.repositories.auth import create_api_key
from mallpulse.cli import app as cli
from tests.integration.cloud.security.auth_apps import (
    OLD_SECRET,
    SECRET,
    app_client,
    auth_settings,
    bearer,
)

WHO = "/v1/stores"  # any signed-in role may list the stores it can see


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner whose environment points at the test database with the test secret."""
    monkeypatch.setenv("MALLPULSE_DATABASE_URL", database_url)
    monkeypatch.setenv("MALLPULSE_JWT_SECRET", SECRET)
    return CliRunner()


def test_cli_refuses_a_ten_year_admin_token(env: CliRunner) -> None:
    res = env.invoke(cli, ["cloud", "token", "--subject", "x", "--role", "admin",
                           "--ttl", "315360000"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "MALLPULSE_JWT_MAX_TTL_ADMIN_S" in res.output and "Traceback" not in res.output
    assert not res.stdout.strip()


def test_mint_caps_each_role_and_defaults_below_the_cap(database_url: str) -> None:
    settings = auth_settings(database_url, jwt_ttl_s=7200, jwt_max_ttl_admin_s=3600)
    with pytest.raises(InvalidInputError, match="1 to 3600 seconds"):
        mint_token(settings, subject="x", role=Role.ADMIN, ttl_s=3601)
    issued = mint_token(settings, subject="x", role=Role.ADMIN)
    assert issued.expires_at - int(time.time()) <= 3600
    claims = jwt.decode(issued.token, SECRET, algorithms=["HS256"], issuer="mallpulse")
    assert claims["jti"] == issued.jti and jwt.get_unverified_header(issued.token)["kid"]


def _signed(secret: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "mallpulse", "sub": "mallory", "role": "admin", "iat": now,
            "exp": now + 600, "jti": uuid.uuid4().hex, **claims}  # fmt: skip
    return jwt.encode(body, secret, algorithm="HS256", headers={"kid": key_id(secret)})


def test_a_token_living_longer_than_its_role_allows_is_refused(
    database_url: str, pg_pool: Any
) -> None:
    ten_years = _signed(SECRET, exp=int(time.time()) + 315360000)
    no_jti = jwt.encode({"iss": "mallpulse", "sub": "m", "role": "admin", "iat": 1,
                         "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")  # fmt: skip
    with app_client(auth_settings(database_url), pg_pool) as c:
        assert c.get(WHO, headers=bearer(_signed(SECRET))).status_code == 200
        res = c.get(WHO, headers=bearer(ten_years))
        assert res.status_code == 401 and "longer than" in res.json()["detail"]
        res = c.get(WHO, headers=bearer(no_jti))
        assert res.status_code == 401 and "jti" in res.json()["detail"]


def test_a_revoked_token_is_refused(env: CliRunner, database_url: str, pg_pool: Any) -> None:
    made = env.invoke(cli, ["cloud", "token", "--subject", "ann", "--role", "hq_marketer"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    jti = re.search(r"jti (\w+)", made.stderr)
    assert jti, made.stderr
    with app_client(auth_settings(database_url), pg_pool) as c:
        assert c.get(WHO, headers=bearer(token)).status_code == 200
        res = env.invoke(cli, ["cloud", "token", "revoke", jti[1], "--reason", "laptop stolen"])
        assert res.exit_code == 0 and "revoked" in res.output, res.output
        refused = c.get(WHO, headers=bearer(token))
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    again = env.invoke(cli, ["cloud", "token", "revoke", jti[1]])
    assert again.exit_code == 0 and "already revoked" in again.output


def test_rotation_keeps_tokens_of_the_previous_secret_only_while_it_is_set(
    database_url: str, pg_pool: Any
) -> None:
    old = mint_token(auth_settings(database_url, jwt_secret=OLD_SECRET),
                     subject="ann", role=Role.HQ_MARKETER).token  # fmt: skip
    grace = auth_settings(database_url, jwt_previous_secret=OLD_SECRET)
    with app_client(grace, pg_pool) as c:
        assert c.get(WHO, headers=bearer(old)).status_code == 200
        fresh = mint_token(grace, subject="ann", role=Role.HQ_MARKETER).token
        assert jwt.get_unverified_header(fresh)["kid"] == key_id(SECRET)
    with app_client(auth_settings(database_url), pg_pool) as c:
        res = c.get(WHO, headers=bearer(old))
        assert res.status_code == 401 and "retired key" in res.json()["detail"]
        assert c.get(WHO, headers=bearer(fresh)).status_code == 200


@pytest.mark.parametrize(
    "secret", ["a" * 32, "0" * 64, "ab" * 24, "test-secret-" + "x" * 32, "Password1" * 4]
)
def test_low_variety_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(jwt_secret=secret)
    text = str(err.value)
    assert "MALLPULSE_JWT_SECRET" in text and "openssl rand -hex 32" in text
    assert secret not in text  # the (weak) secret is never echoed into logs


def test_cli_names_the_weak_secret_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLPULSE_JWT_SECRET", "a" * 32)
    res = CliRunner().invoke(cli, ["cloud", "token", "--subject", "x", "--role", "admin"])
    assert res.exit_code == 2 and "MALLPULSE_JWT_SECRET" in res.output
    assert "variety" in res.output and "Traceback" not in res.output


def test_an_expired_api_key_is_refused(database_url: str, pg_pool: Any) -> None:
    with psycopg.connect(database_url) as conn:
        _, live = create_api_key(conn, name="live", role=Role.HQ_MARKETER)
        _, old = create_api_key(conn, name="old", role=Role.HQ_MARKETER, ttl=timedelta(seconds=-1))
    with app_client(auth_settings(database_url), pg_pool) as c:
        assert c.get(WHO, headers={"X-API-Key": live}).status_code == 200
        res = c.get(WHO, headers={"X-API-Key": old})
        assert res.status_code == 401 and "expired" in res.json()["detail"]


def _key(output: str) -> tuple[str, str]:
    found = re.search(r"key id (\d+): (mp_\S+)", output)
    assert found, output
    return found[1], found[2]


def test_apikey_commands_create_list_rotate_revoke(
    env: CliRunner, database_url: str, pg_pool: Any
) -> None:
    name = f"pos-{uuid.uuid4().hex[:6]}"
    too_long = env.invoke(cli, ["cloud", "apikey", "create", "--name", name,
                                "--role", "hq_marketer", "--ttl-days", "400"])  # fmt: skip
    assert too_long.exit_code == 2 and "MALLPULSE_APIKEY_MAX_TTL_DAYS" in too_long.output
    first_id, first = _key(env.invoke(cli, ["cloud", "apikey", "create", "--name", name,
                                            "--role", "hq_marketer"]).output)  # fmt: skip
    with app_client(auth_settings(database_url), pg_pool) as c:
        assert c.get(WHO, headers={"X-API-Key": first}).status_code == 200
        rotated = env.invoke(cli, ["cloud", "apikey", "rotate", first_id])
        second_id, second = _key(rotated.stdout)
        assert c.get(WHO, headers={"X-API-Key": first}).status_code == 200  # within the grace
        assert c.get(WHO, headers={"X-API-Key": second}).status_code == 200
        again = env.invoke(cli, ["cloud", "apikey", "rotate", first_id])
        assert again.exit_code == 1 and "unrotated" in again.output
        third_id, third = _key(
            env.invoke(cli, ["cloud", "apikey", "rotate", second_id, "--grace-s", "0"]).stdout
        )
        assert c.get(WHO, headers={"X-API-Key": second}).status_code == 401
        assert env.invoke(cli, ["cloud", "apikey", "revoke", third_id]).exit_code == 0
        assert c.get(WHO, headers={"X-API-Key": third}).status_code == 401
    listed = env.invoke(cli, ["cloud", "apikey", "list"])
    rows = {line.split("\t")[0]: line for line in listed.stdout.splitlines()}
    assert rows[first_id].endswith(f"active, rotated to {second_id}")
    assert rows[second_id].endswith(f"expired, rotated to {third_id}")
    assert rows[third_id].endswith("revoked") and first not in listed.output
    assert env.invoke(cli, ["cloud", "apikey", "revoke", third_id]).exit_code == 1
