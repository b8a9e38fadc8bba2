"""`mallpulse cloud ...`: commands of the cloud CRM core (migrate, api, token, apikey, ...).

Each command builds Settings from the environment (MALLPULSE_*) and imports heavy modules inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from cloud.core.security import Role

if TYPE_CHECKING:
    from cloud.core.settings import Settings

app = typer.Typer(help="Cloud core: migrations, ingest, API, workers.", no_args_is_help=True)


def _settings() -> Settings:
    """Settings from the environment; exits 2 naming the bad variable."""
    from pydantic import ValidationError

    from cloud.core.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"])
            typer.echo(f"setting MALLPULSE_{field.upper()}: {err['msg']}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def migrate() -> None:
    """Apply pending database migrations (safe to run twice)."""
    from cloud.core.logging import configure_logging
    from cloud.db.migrate import migrate as run_migrate

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    applied = run_migrate(settings.database_url)
    typer.echo(f"applied {len(applied)} migrations: {applied}" if applied else "schema up to date")


@app.command()
def api(
    host: str | None = typer.Option(None, help="Listen host (default MALLPULSE_API_HOST)."),
    port: int | None = typer.Option(None, help="Listen port (default MALLPULSE_API_PORT)."),
    workers: int = typer.Option(1, min=1, help="Uvicorn worker processes."),
) -> None:
    """Serve the HTTP API (footfall, CRM, dashboard)."""
    import uvicorn

    from cloud.api.app import create_app
    from cloud.core.errors import SettingsError
    from cloud.core.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        application = create_app(settings)
    except SettingsError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    uvicorn.run(
        application,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_config=None,
        access_log=False,
    )


@app.command()
def token(
    subject: str = typer.Option(..., help="Who the token is for (user name or e-mail)."),
    role: Role = typer.Option(..., help="Role of the caller."),
    store: list[str] = typer.Option([], help="Store id a store manager may see (repeatable)."),
    ttl: int | None = typer.Option(None, help="Lifetime in seconds (default MALLPULSE_JWT_TTL_S)."),
) -> None:
    """Issue a signed JWT bearer token (needs MALLPULSE_JWT_SECRET)."""
    from cloud.core.errors import SettingsError
    from cloud.core.security import issue_token

    try:
        typer.echo(
            issue_token(_settings(), subject=subject, role=role, store_ids=set(store), ttl_s=ttl)
        )
    except SettingsError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def apikey(
    name: str = typer.Option(..., help="A label for the key."),
    role: Role = typer.Option(..., help="Role of the key."),
    store: list[str] = typer.Option([], help="Store id a store manager key may see (repeatable)."),
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    import psycopg

    from cloud.db.repositories.auth import create_api_key

    with psycopg.connect(_settings().database_url) as conn:
        key_id, key = create_api_key(conn, name=name, role=role, store_ids=set(store))
    typer.echo(f"key id {key_id}: {key}")


from cloud.ingest.cli import register as _register_ingest  # noqa: E402 - after the core commands

_register_ingest(app)
from cloud.ml.cli import register as _register_ml  # noqa: E402 - after the core commands

_register_ml(app)
from cloud.crm.cli import register as _register_crm  # noqa: E402 - after the core commands

_register_crm(app)
