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
    """Validate device config files and the files they refer to (manifests, model weights,
    face and age/gender models); exit 2 naming the file and field of every problem."""
    from edge.config.files import check_files

    failed = False
    for path in files:
        try:
            cfg = load_config(path)
            check_files(cfg, path)
        except ConfigError as exc:
            failed = True
            typer.echo(f"INVALID {exc}", err=True)
            continue
        cams = cfg.cameras
        counts = ", ".join([
            _count(len(cams), "camera", "cameras"),
            _count(sum(len(c.lines) for c in cams), "line", "lines"),
            _count(sum(len(c.zones) for c in cams), "zone", "zones"),
            _count(sum(len(c.shelves) for c in cams), "shelf", "shelves"),
        ])  # fmt: skip
        typer.echo(
            f"OK {path}: device {cfg.device.device_id} in store {cfg.device.store_id}, {counts}"
        )
    if failed:
        typer.echo("Fix the fields named above and run the command again.", err=True)
        raise typer.Exit(2)


def _count(n: int, one: str, many: str) -> str:
    """'1 shelf', '2 shelves'."""
    return f"{n} {one if n == 1 else many}"


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
