"""`mallpulse edge ...`: commands of the store gateway agent.

Each command lives in its own module exposing `register(app)`; heavy imports stay inside the
command functions.
"""

from __future__ import annotations

import typer

from edge.cli import replay, run

app = typer.Typer(help="Store gateway: replay videos, run the agent.", no_args_is_help=True)
run.register(app)
replay.register(app)
