"""`mallpulse cloud events source create|list` and `mallpulse cloud events import FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cloud.core.settings import Settings
    from cloud.crm.events.importer import ImportReport

events_app = typer.Typer(help="Behavioural events: sources and bulk import.", no_args_is_help=True)
source_app = typer.Typer(help="Write-key sources.", no_args_is_help=True)
events_app.add_typer(source_app, name="source")


def register(app: typer.Typer) -> None:
    """Add the `events` group to the `cloud` group."""
    app.add_typer(events_app, name="events")


def _settings() -> Settings:
    from cloud.cli import _settings as core_settings

    return core_settings()


@source_app.command("create")
def source_create(
    source_id: str = typer.Argument(..., help="Short id, e.g. `web` (a-z, 0-9, - and _)."),
    name: str = typer.Option("", help="Display name (default: the id)."),
    plan_mode: str = typer.Option("flag", help="flag (store and count) or reject (4xx)."),
    retention_days: int | None = typer.Option(None, min=1, help="Keep events so many days."),
    consent_required: bool = typer.Option(
        True, help="Store only calls that carry analytics consent (browser sources)."
    ),
) -> None:
    """Create a source and print its write key (shown this once; only its hash is kept)."""
    import re

    import psycopg

    from cloud.core.errors import CloudError
    from cloud.crm.events.sources import create_source

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", source_id):
        raise _fail("source id: 1-63 of a-z, 0-9, - and _, starting with a letter or digit")
    if plan_mode not in ("flag", "reject"):
        raise _fail("--plan-mode: flag or reject")
    with psycopg.connect(_settings().database_url) as conn:
        try:
            _, key = create_source(
                conn, source_id=source_id, name=name or source_id, plan_mode=plan_mode,
                retention_days=retention_days, consent_required=consent_required,
            )  # fmt: skip
        except CloudError as exc:
            raise _fail(exc.detail) from exc
    typer.echo(key)


@source_app.command("list")
def source_list() -> None:
    """List sources (id, plan mode, retention, consent, key prefix)."""
    import psycopg

    from cloud.crm.events.repository import list_sources

    with psycopg.connect(_settings().database_url) as conn:
        for s in list_sources(conn):
            keep = f"{s.retention_days}d" if s.retention_days else "forever"
            consent = "required" if s.consent_required else "no"
            revoked = "\trevoked" if s.revoked_at else ""
            typer.echo(
                f"{s.id}\t{s.plan_mode}\t{keep}\tconsent={consent}\t{s.write_key_prefix}...{revoked}"
            )


@events_app.command("import")
def import_file(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL or CSV file."),
    source: str = typer.Option(..., help="The source the events belong to."),
    fmt: str = typer.Option("auto", "--format", help="jsonl, csv or auto (by extension)."),
) -> None:
    """Backfill events (one Segment call per line or row) via COPY, with progress on stderr;
    refused lines are listed (exit 1 if any); a re-import stores nothing twice."""
    import psycopg

    from cloud.crm.config import crm_config
    from cloud.crm.events.importer import import_events, records_of
    from cloud.crm.events.repository import get_source

    kind = fmt if fmt != "auto" else ("csv" if file.suffix.lower() == ".csv" else "jsonl")
    if kind not in ("jsonl", "csv"):
        raise _fail("--format: jsonl, csv or auto")
    settings = _settings()

    def progress(r: ImportReport) -> None:
        typer.echo(f"  {r.lines} lines: {r.stored} stored, {r.duplicates} duplicates,"
                   f" {len(r.errors)} refused", err=True)  # fmt: skip

    with psycopg.connect(settings.database_url) as conn:
        found = get_source(conn, source)
        if found is None:
            raise _fail(
                f"no event source {source!r} (create it: mallpulse cloud events source create)"
            )
        report = import_events(
            conn, records_of(file.read_bytes(), kind), source=found,
            rules=crm_config(settings)[0], progress=progress,
        )  # fmt: skip
    for line, message in report.errors[:100]:
        typer.echo(f"line {line}: {message}", err=True)
    typer.echo(
        f"{report.stored} stored, {report.duplicates} duplicates, {len(report.errors)} refused"
        f" of {report.lines} lines"
    )
    if report.errors:
        raise typer.Exit(1)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)
