"""`mallpulse cloud import-customers | export-customers | crm-expire | crm-review-tiers |
crm-seed`: CRM commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cloud.core.settings import Settings


def register(app: typer.Typer) -> None:
    """Add the CRM commands to the `cloud` group."""
    app.command("import-customers")(import_customers)
    app.command("export-customers")(export_customers)
    app.command("crm-expire")(crm_expire)
    app.command("crm-review-tiers")(crm_review_tiers)
    app.command("crm-seed")(crm_seed)
    messaging = typer.Typer(help="Messaging hub commands.", no_args_is_help=True)
    messaging.command("inbound-smtp")(messaging_inbound_smtp)
    app.add_typer(messaging, name="messaging")


def _settings() -> Settings:
    from cloud.cli import _settings as core_settings

    return core_settings()


def import_customers(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV file with a header."),
    source: str = typer.Option("import", help="Source name recorded on each row."),
) -> None:
    """Import customers from CSV; prints a per-row report of rejected lines (exit 1 if any)."""
    import psycopg

    from cloud.core.errors import SettingsError
    from cloud.crm.config import crm_config
    from cloud.crm.errors import CrmInvalidInputError
    from cloud.crm.importer import import_customers as run_import

    settings = _settings()

    def progress(done: int, total: int) -> None:
        if done % 500 == 0 or done == total:
            typer.echo(f"  {done}/{total} rows", err=True)

    try:
        with psycopg.connect(settings.database_url) as conn:
            report = run_import(
                conn,
                file.read_bytes(),
                source=source,
                rules=crm_config(settings)[0],
                progress=progress,
            )
    except (CrmInvalidInputError, SettingsError) as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    for err in report.errors:
        typer.echo(f"line {err['line']}: {err.get('field') or '-'}: {err['message']}", err=True)
    typer.echo(
        f"import {report.import_id}: {report.rows} rows, {report.imported} imported,"
        f" {report.rejected} rejected"
    )
    if report.rejected:
        raise typer.Exit(1)


def export_customers(
    out: Path | None = typer.Option(None, help="Write here instead of standard output."),
) -> None:
    """Export live customers as CSV."""
    import psycopg

    from cloud.crm.importer import export_customers as run_export

    with psycopg.connect(_settings().database_url) as conn:
        data = run_export(conn)
    if out is None:
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)
        typer.echo(f"wrote {len(data)} bytes to {out}", err=True)


def crm_expire() -> None:
    """Expire past-due loyalty points now (what the daily beat task does)."""
    from cloud.workers.crm_tasks import run_expiry

    typer.echo(f"expired {run_expiry(_settings())} points")


def crm_review_tiers() -> None:
    """Review loyalty tiers whose period ended now (what the daily beat task does)."""
    from cloud.workers.crm_tasks import run_tier_review

    typer.echo(f"downgraded {run_tier_review(_settings())} accounts")


def crm_seed(
    customers: int = typer.Option(200, min=1, help="Synthetic customers to create."),
    store: list[str] = typer.Option(..., help="Existing store id (repeatable)."),
    seed: int = typer.Option(7, help="Random seed (same seed, same data)."),
) -> None:
    """Seed synthetic customers, purchases, loyalty and consent through the real services."""
    import psycopg

    from cloud.crm.seed import seed_demo_crm

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            typer.echo(f"  {done}/{total} customers", err=True)

    from cloud.core.errors import SettingsError
    from cloud.crm.config import crm_config

    settings = _settings()
    try:
        program = crm_config(settings)[1]
    except SettingsError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    with psycopg.connect(settings.database_url) as conn:
        totals = seed_demo_crm(
            conn,
            customers=customers,
            stores=store,
            program=program,
            rng_seed=seed,
            progress=progress,
        )
    typer.echo(", ".join(f"{v} {k}" for k, v in totals.items()))


def messaging_inbound_smtp(
    host: str = typer.Option("0.0.0.0", help="Address to listen on."),  # noqa: S104
    port: int = typer.Option(2525, min=1, max=65535, help="Port to listen on."),
    domain: list[str] = typer.Option(
        [],
        help="Domain whose mail is taken (repeatable); the tracking config's reply_domain"
        " is always taken.",
    ),
) -> None:
    """Take customers' e-mail into the unified inbox (an SMTP server; see docs/messaging.md)."""
    from cloud.crm.messaging.errors import MessagingInvalidInputError
    from cloud.crm.messaging.inbound_smtp import serve

    try:
        serve(_settings().database_url, host=host, port=port, domains=domain)
    except MessagingInvalidInputError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
