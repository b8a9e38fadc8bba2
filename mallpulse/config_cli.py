"""`mallpulse config ...`: validate device configs and write their JSON schema."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.config import ConfigError, config_json_schema, load_config

app = typer.Typer(
    help="Validate device configs and export their JSON schema.", no_args_is_help=True
)

SCHEMA_PATH = Path("firmware-config/edge-config.schema.json")


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Device config files (YAML or JSON)."),
) -> None:
    """Validate device config files; exit 2 naming the file and field of every problem."""
    failed = False
    for path in files:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            failed = True
            typer.echo(f"INVALID {exc}", err=True)
            continue
        lines = sum(len(c.lines) for c in cfg.cameras)
        zones = sum(len(c.zones) for c in cfg.cameras)
        shelves = sum(len(c.shelves) for c in cfg.cameras)
        typer.echo(
            f"OK {path}: device {cfg.device.device_id} in store {cfg.device.store_id}, "
            f"{len(cfg.cameras)} cameras, {lines} lines, {zones} zones, {shelves} shelves"
        )
    if failed:
        typer.echo("Fix the fields named above and run the command again.", err=True)
        raise typer.Exit(2)


@app.command()
def schema(
    out: Path | None = typer.Option(
        None, "--out", "-o", help=f"Write the schema here (e.g. {SCHEMA_PATH}); default stdout."
    ),
) -> None:
    """Print or write the JSON schema of the device config."""
    text = config_json_schema()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")
