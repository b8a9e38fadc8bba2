"""`mallpulse cloud ml-learn | fit-clv | score-customers | eval-cdnow`: predictive commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cloud.core.settings import Settings


def register(app: typer.Typer) -> None:
    """Add the predictive-analytics commands to the `cloud` group."""
    app.command("ml-learn")(ml_learn)
    app.command("fit-clv")(fit_clv)
    app.command("score-customers")(score_customers)
    app.command("eval-cdnow")(eval_cdnow)


def _settings() -> Settings:
    """Settings from the environment; exits 2 naming a bad variable (the core's helper)."""
    from cloud.cli import _settings as core_settings

    return core_settings()


def ml_learn(
    max_batches: int = typer.Option(1000, min=1, help="Stop after this many batches."),
) -> None:
    """Learn all new CRM events into the churn model now (what the beat task does bit by bit)."""
    import psycopg

    from cloud.core.logging import configure_logging
    from cloud.ml import service

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    total = 0
    with psycopg.connect(settings.database_url) as conn:
        for n in range(1, max_batches + 1):
            res = service.learn(conn, settings=settings)
            total += res.applied
            typer.echo(
                f"batch {n}: read {res.read}, learnt {res.applied}, rejected {res.rejected},"
                f" model version {res.version}, samples {res.samples_seen}"
            )
            if res.read == 0 or res.busy:
                break
    typer.echo(f"learnt {total} events")


def fit_clv() -> None:
    """Refit BG/NBD and Gamma-Gamma on all customers and per store (needs a trained model)."""
    import psycopg

    from cloud.ml import service
    from cloud.ml.errors import MLError, ModelNotFoundError

    settings = _settings()
    with psycopg.connect(settings.database_url) as conn:
        try:
            fits = service.refit_clv(conn, settings=settings)
        except (ModelNotFoundError, MLError) as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(1) from exc
        conn.commit()
    typer.echo(json.dumps(fits, indent=2))


def score_customers() -> None:
    """Score every customer now (churn, CLV, health, next best action) with progress."""
    import psycopg

    from cloud.ml import service
    from cloud.ml.errors import ModelNotFoundError
    from cloud.ml.scoring import score_all

    settings = _settings()
    with psycopg.connect(settings.database_url) as conn:
        try:
            ctx = service.scoring_context(conn, settings=settings)
        except ModelNotFoundError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(1) from exc
        n = score_all(conn, ctx, progress=lambda k: typer.echo(f"scored {k} customers"))
    typer.echo(f"scored {n} customers with model version {ctx.loaded.version}")


def eval_cdnow(
    admin_url: str = typer.Option(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL allowed to CREATE DATABASE; a scratch database is made and dropped.",
    ),
    shared: Path = typer.Option(
        Path(os.environ.get("MALLPULSE_SHARED", "../shared")), help="Shared assets folder."
    ),
    cutoff_weeks: int = typer.Option(52, min=40, max=52, help="Cut-off, weeks from 1997-01-01."),
    out: Path | None = typer.Option(None, help="Write the numbers as JSON here."),
) -> None:
    """Evaluate churn and CLV on CDNOW through the real ingestion path (several minutes)."""
    from cloud.ml import evaluation

    master = shared / "data/cdnow/CDNOW_master.txt"
    if not master.is_file():
        typer.echo(f"error: {master} not found; pass --shared or set MALLPULSE_SHARED", err=True)
        raise typer.Exit(2)
    result = evaluation.run_in_scratch_database(
        admin_url, shared, cutoff_weeks=cutoff_weeks, progress=typer.echo
    )
    typer.echo(evaluation.report(result))
    if out:
        out.write_text(json.dumps(result, indent=2, default=str))
