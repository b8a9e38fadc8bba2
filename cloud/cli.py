"""`mallpulse cloud ...`: commands of the cloud CRM core (migrate, api, token, apikey, ...).

Each command builds Settings from the environment (MALLPULSE_*) and imports heavy modules inside.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from cloud.core.security import Role

if TYPE_CHECKING:
    from datetime import timedelta

    from cloud.core.settings import Settings


def database_problem(exc: BaseException) -> str | None:
    """One line saying the database is unreachable and what to do, or None for other errors."""
    import psycopg
    from psycopg_pool import PoolTimeout

    if not isinstance(exc, psycopg.OperationalError | PoolTimeout):
        return None
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    url = os.environ.get("MALLPULSE_DATABASE_URL", "the default postgresql://127.0.0.1:5432")
    url = re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)  # never print a password
    return (
        f"error: the database is unreachable ({detail}); start PostgreSQL or point "
        f"MALLPULSE_DATABASE_URL at a running server (now {url}), then run the command again"
    )


class _CloudGroup(TyperGroup):
    """The `cloud` group: any of its commands meeting a database that is down ends with one
    line saying what to do and exit code 1, not a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            problem = database_problem(exc)
            if problem is None:
                raise
            typer.echo(problem, err=True)
            raise typer.Exit(1) from exc


app = typer.Typer(
    cls=_CloudGroup, help="Cloud core: migrations, ingest, API, workers.", no_args_is_help=True
)


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
        server_header=False,  # do not tell scanners which server (and version) runs here
        proxy_headers=False,  # X-Forwarded-For counts only per MALLPULSE_TRUSTED_PROXIES
    )


token_app = typer.Typer(help="Bearer tokens: issue one (no subcommand) or revoke one.")
apikey_app = typer.Typer(help="API keys: create, list, rotate, revoke.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(apikey_app, name="apikey")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@token_app.callback(invoke_without_command=True)
def token(
    ctx: typer.Context,
    subject: str | None = typer.Option(None, help="Who the token is for (user name or e-mail)."),
    role: Role | None = typer.Option(None, help="Role of the caller."),
    store: list[str] = typer.Option([], help="Store id a store manager may see (repeatable)."),
    ttl: int | None = typer.Option(
        None, help="Lifetime in seconds (default MALLPULSE_JWT_TTL_S; at most the role's cap)."
    ),
) -> None:
    """Issue a signed JWT bearer token (needs MALLPULSE_JWT_SECRET); its id goes to stderr."""
    if ctx.invoked_subcommand is not None:
        return
    from cloud.core.errors import CloudError
    from cloud.core.security import mint_token

    if subject is None or role is None:
        raise _fail("--subject and --role are required to issue a token")
    try:
        issued = mint_token(
            _settings(), subject=subject, role=role, store_ids=set(store), ttl_s=ttl
        )
    except CloudError as exc:
        raise _fail(exc.detail) from exc
    typer.echo(issued.token)
    typer.echo(f"jti {issued.jti}, expires at {issued.expires_at} (epoch s)", err=True)


@token_app.command("revoke")
def token_revoke(
    jti: str = typer.Argument(..., help="The token id (jti) printed when it was issued."),
    reason: str = typer.Option("", help="Why, for the audit trail."),
) -> None:
    """Revoke a bearer token by id (API replicas see it within their revocation cache time)."""
    from datetime import timedelta

    import psycopg

    from cloud.core.security import longest_ttl_s
    from cloud.db.repositories.auth import revoke_token

    settings = _settings()
    if not 0 < len(jti) <= 128:
        raise _fail("a token id has 1 to 128 characters")
    keep = timedelta(seconds=longest_ttl_s(settings))
    with psycopg.connect(settings.database_url) as conn:
        fresh = revoke_token(conn, jti=jti, keep_for=keep, reason=reason)
    typer.echo(f"token {jti} revoked" if fresh else f"token {jti} was already revoked")


def _key_ttl(settings: Settings, ttl_days: int | None) -> timedelta:
    from datetime import timedelta

    days = settings.apikey_ttl_days if ttl_days is None else ttl_days
    if not 0 < days <= settings.apikey_max_ttl_days:
        raise _fail(
            f"--ttl-days must be 1 to {settings.apikey_max_ttl_days} "
            "(MALLPULSE_APIKEY_MAX_TTL_DAYS)"
        )
    return timedelta(days=days)


@apikey_app.command("create")
def apikey_create(
    name: str = typer.Option(..., help="A label for the key."),
    role: Role = typer.Option(..., help="Role of the key."),
    store: list[str] = typer.Option([], help="Store id a store manager key may see (repeatable)."),
    ttl_days: int | None = typer.Option(
        None, help="Lifetime in days (default MALLPULSE_APIKEY_TTL_DAYS)."
    ),
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    import psycopg

    from cloud.db.repositories.auth import create_api_key

    settings = _settings()
    ttl = _key_ttl(settings, ttl_days)
    with psycopg.connect(settings.database_url) as conn:
        key_id, key = create_api_key(conn, name=name, role=role, store_ids=set(store), ttl=ttl)
    typer.echo(f"key id {key_id}: {key}")


@apikey_app.command("list")
def apikey_list() -> None:
    """Every key: id, name, role, stores, expiry and state (never the key itself)."""
    import psycopg

    from cloud.db.repositories.auth import list_api_keys

    with psycopg.connect(_settings().database_url) as conn:
        keys = list_api_keys(conn)
    for k in keys:
        state = "active" if k.active else ("revoked" if k.revoked_at else "expired")
        if k.rotated_to is not None:
            state += f", rotated to {k.rotated_to}"
        stores = ",".join(k.store_ids) or "-"
        typer.echo(f"{k.id}\t{k.name}\t{k.role.value}\t{stores}\t"
                   f"expires {k.expires_at:%Y-%m-%dT%H:%M:%SZ}\t{state}")  # fmt: skip


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: int = typer.Argument(..., help="The key's id (see `apikey list`)."),
) -> None:
    """Revoke a key at once."""
    import psycopg

    from cloud.db.repositories.auth import revoke_api_key

    with psycopg.connect(_settings().database_url) as conn:
        if not revoke_api_key(conn, key_id):
            raise _fail(f"no active API key with id {key_id}", 1)
    typer.echo(f"key id {key_id} revoked")


@apikey_app.command("rotate")
def apikey_rotate(
    key_id: int = typer.Argument(..., help="The key to replace (see `apikey list`)."),
    grace_s: int = typer.Option(3600, min=0, help="How long the old key keeps working."),
    ttl_days: int | None = typer.Option(None, help="Lifetime of the new key in days."),
) -> None:
    """A successor key with the same name, role and stores; the old one ends after the grace."""
    from datetime import timedelta

    import psycopg

    from cloud.db.repositories.auth import rotate_api_key

    settings = _settings()
    ttl = _key_ttl(settings, ttl_days)
    with psycopg.connect(settings.database_url) as conn:
        made = rotate_api_key(conn, key_id, grace=timedelta(seconds=grace_s), ttl=ttl)
    if made is None:
        raise _fail(f"no active, unrotated API key with id {key_id}", 1)
    typer.echo(f"key id {made[0]}: {made[1]}")
    typer.echo(f"key id {key_id} stops working in {grace_s} s", err=True)


from cloud.ingest.cli import register as _register_ingest  # noqa: E402 - after the core commands

_register_ingest(app)
from cloud.ml.cli import register as _register_ml  # noqa: E402 - after the core commands

_register_ml(app)
from cloud.crm.cli import register as _register_crm  # noqa: E402 - after the core commands

_register_crm(app)
from cloud.crm.events.cli import register as _register_events  # noqa: E402 - after the core commands

_register_events(app)
