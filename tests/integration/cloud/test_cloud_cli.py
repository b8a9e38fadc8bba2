"""`mallpulse cloud migrate|token|apikey` as an operator runs them, with JSON logging on."""

from __future__ import annotations

from collections.abc import Callable

import jwt
import psycopg
import pytest
from typer.testing import CliRunner

from mallpulse.cli import app


def test_migrate_twice_on_a_new_database(
    fresh_database: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database(migrate=False)
    monkeypatch.setenv("MALLPULSE_DATABASE_URL", url)
    monkeypatch.setenv("MALLPULSE_LOG_LEVEL", "INFO")
    runner = CliRunner()
    first = runner.invoke(app, ["cloud", "migrate"])
    assert first.exit_code == 0, first.output
    assert "applied" in first.output
    second = runner.invoke(app, ["cloud", "migrate"])
    assert second.exit_code == 0, second.output
    assert "schema up to date" in second.output
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1


def test_token_and_apikey(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "cli-test-6419141c349984bebf288ebe8004b997d45210a7f05ca398"
    monkeypatch.setenv("MALLPULSE_DATABASE_URL", database_url)
    monkeypatch.setenv("MALLPULSE_JWT_SECRET", secret)
    runner = CliRunner()
    res = runner.invoke(
        app, ["cloud", "token", "--subject", "ann", "--role", "store_manager", "--store", "s1"]
    )
    assert res.exit_code == 0, res.output
    claims = jwt.decode(res.stdout.strip(), secret, algorithms=["HS256"], issuer="mallpulse")
    assert claims["role"] == "store_manager" and claims["stores"] == ["s1"]
    key = runner.invoke(
        app, ["cloud", "apikey", "create", "--name", "cli-test", "--role", "hq_marketer"]
    )
    assert key.exit_code == 0, key.output
    assert "mp_" in key.output


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLPULSE_JWT_SECRET", "short")
    res = CliRunner().invoke(app, ["cloud", "token", "--subject", "x", "--role", "admin"])
    assert res.exit_code == 2
    assert "MALLPULSE_JWT_SECRET" in res.output
    assert "32 characters" in res.output
    assert "Traceback" not in res.output
