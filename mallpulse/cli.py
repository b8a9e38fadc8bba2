"""Entry point of the `mallpulse` command: one Typer app with a group per subsystem.

Sub-command modules import their heavy dependencies (OpenCV, onnxruntime, psycopg) inside the
command functions, so `mallpulse --help` stays fast on a gateway.
"""

from __future__ import annotations

import typer

from cloud.cli import app as cloud_app
from cloud.simulator.cli import simulate
from edge.cli import app as edge_app
from mallpulse import __version__
from mallpulse.config_cli import app as config_app
from mallpulse.demo.cli import demo

app = typer.Typer(
    name="mallpulse",
    help="MallPulse: retail intelligence from store cameras to the cloud CRM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")
app.add_typer(edge_app, name="edge")
app.add_typer(cloud_app, name="cloud")
app.command("simulate")(simulate)
app.command("demo")(demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mallpulse {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """MallPulse command line."""


def main() -> None:
    """Run the CLI."""
    app()
