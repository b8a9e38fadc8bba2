"""`mallpulse demo`: the whole system in one command."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    data_dir: Path = typer.Option(
        Path(".mallpulse-demo"), help="Folder for the demo's data, logs, video and outbox."
    ),
    database_url: str | None = typer.Option(
        None,
        envvar="MALLPULSE_DATABASE_URL",
        help="Use this PostgreSQL (default: local server if it answers, else embedded).",
    ),
    mqtt: str | None = typer.Option(
        None,
        envvar="MALLPULSE_DEMO_MQTT",
        help="host:port of an MQTT broker (default: 127.0.0.1:1883 if it answers, else embedded).",
    ),
    celery_broker_url: str | None = typer.Option(
        None,
        envvar="MALLPULSE_CELERY_BROKER_URL",
        help="Celery broker URL (default: a filesystem transport, no server).",
    ),
    embedded: bool = typer.Option(
        False,
        help="Always start the embedded PostgreSQL and MQTT broker, even if local ones answer.",
    ),
    api_port: int | None = typer.Option(None, help="API port (default 8000, or a free one)."),
    video: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="Replay this video with YOLOX-Nano instead of the rendered synthetic store.",
    ),
    stores: int = typer.Option(3, min=0, max=50, help="Simulated stores besides the demo store."),
    customers: int = typer.Option(300, min=0, max=100_000, help="Synthetic CRM customers."),
    window_s: int = typer.Option(10, min=5, max=60, help="Aggregation window in seconds."),
    topic_prefix: str = typer.Option("mallpulse/v1", help="MQTT topic prefix."),
    duration: float = typer.Option(0.0, min=0.0, help="Stop after this many seconds (0: Ctrl-C)."),
) -> None:
    """Run all of MallPulse on this machine: database, broker, ingest, API and dashboard, Celery,
    an edge agent replaying a store video, a fleet simulator and a seeded CRM."""
    from mallpulse.demo.run import DemoOptions, default_api_port, run_demo

    if 86400 % window_s:
        raise typer.BadParameter(
            "must divide 86400 (e.g. 5, 10, 15, 20, 30, 60)", param_hint="--window-s"
        )
    opts = DemoOptions(
        data_dir=data_dir.resolve(), database_url=database_url, mqtt=mqtt,
        celery_broker_url=celery_broker_url, embedded=embedded,
        api_port=api_port or default_api_port(),
        video=video.resolve() if video else None, stores=stores, customers=customers,
        window_s=window_s, topic_prefix=topic_prefix, duration_s=duration,
    )  # fmt: skip
    raise typer.Exit(run_demo(opts))
