"""`mallpulse cloud ...`: commands of the cloud CRM core (migrate, ingest, api, worker)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Cloud core: migrations, ingest, API, workers.", no_args_is_help=True)
