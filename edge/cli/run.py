"""`mallpulse edge run`: the gateway daemon (every camera, uplink, health, remote config)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from edge.agent import Agent
    from edge.config import EdgeConfig


def register(app: typer.Typer) -> None:
    """Add the `run` and `publish` commands to the `edge` group."""
    app.command("run")(run)
    app.command("publish")(publish)


def run(
    config: Path = typer.Option(..., "--config", "-c", help="Device config file (YAML or JSON)."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    log_format: str = typer.Option("json", "--log-format", help="'json' (default) or 'text'."),
    drain_timeout: float = typer.Option(
        5.0, "--drain-timeout", min=0.0, help="Seconds to keep sending after SIGTERM."
    ),
    pipeline: str | None = typer.Option(
        None,
        "--pipeline",
        help="MODULE:CALLABLE returning a pipeline factory(config, camera) (default: the "
        "vision pipeline, edge.pipeline).",
    ),
    source: str | None = typer.Option(
        None,
        "--source",
        help="MODULE:CALLABLE returning a frame-source factory(camera) (default: edge.capture).",
    ),
) -> None:
    """Run the agent until SIGTERM/SIGINT; the open windows are flushed into the outbox."""
    import signal
    import threading

    from edge.config import ConfigError, load_config
    from edge.logging import configure_logging

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"INVALID {exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(log_level, fmt=log_format, device_id=cfg.device.device_id)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent = _build_agent(cfg, config, pipeline, source, drain_timeout)
    agent.run(stop)


def _build_agent(
    cfg: EdgeConfig, path: Path, pipeline: str | None, source: str | None, drain_timeout: float
) -> Agent:
    """The agent from the config; exits with status 1 and a message when it cannot start."""
    from edge.agent import Agent, default_pipeline_factory, default_source_factory, load_factory
    from edge.errors import EdgeError

    def build(use_saved: bool) -> Agent:
        return Agent(
            cfg,
            pipeline_factory=load_factory(pipeline)
            if pipeline
            else default_pipeline_factory(path.parent),
            source_factory=load_factory(source) if source else default_source_factory(path.parent),
            config_dir=path.parent,
            drain_timeout_s=drain_timeout,
            use_saved_config=use_saved,
        )

    try:
        return build(use_saved=True)
    except EdgeError as exc:
        # A remotely pushed config that cannot start (say, it names a missing model) must not
        # lock the gateway in a restart loop: try the local file once more.
        logging.getLogger("edge.cli").error(
            "cannot start (%s); retrying with the local config", exc
        )
    try:
        return build(use_saved=False)
    except EdgeError as exc:
        typer.echo(f"ERROR {exc}", err=True)
        raise typer.Exit(1) from exc


def publish(
    windows: Path = typer.Argument(..., help="JSON lines of envelopes, e.g. from `edge replay`."),
    config: Path = typer.Option(..., "--config", "-c", help="Device config file (YAML or JSON)."),
    drain_timeout: float = typer.Option(
        30.0, "--drain-timeout", min=0.0, help="Seconds to wait for the cloud's acknowledgements."
    ),
) -> None:
    """Send envelopes (the output of `edge replay`) through the device's outbox and uplink.

    Every line is checked first; one bad line rejects the file and nothing is stored. Sequence
    numbers are reassigned by the outbox, as for live windows.
    """
    from edge.config import ConfigError, load_config
    from edge.uplink.session import UplinkSession

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"INVALID {exc}", err=True)
        raise typer.Exit(2) from exc
    envelopes = _read_envelopes(windows)
    with UplinkSession(cfg, drain_timeout_s=0.0) as session:
        seqs = session.store(envelopes)
        left = session.drain(drain_timeout)
    first, last = (seqs[0], seqs[-1]) if seqs else (0, 0)
    typer.echo(f"stored {len(seqs)} envelopes (sequences {first}-{last}); {left} still queued")


def _read_envelopes(path: Path) -> list[Any]:
    """Envelopes from JSON lines (protobuf JSON mapping); exit 2 naming the first bad line."""
    import json

    from google.protobuf.json_format import ParseDict, ParseError

    from protos.mallpulse.v1 import telemetry_pb2

    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"INVALID {path}: cannot read: {exc}", err=True)
        raise typer.Exit(2) from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            env = ParseDict(json.loads(line), telemetry_pb2.Envelope())
        except (ValueError, ParseError) as exc:
            typer.echo(f"INVALID {path}:{number}: {exc}", err=True)
            raise typer.Exit(2) from exc
        if env.WhichOneof("payload") is None:
            typer.echo(f"INVALID {path}:{number}: envelope without window or health", err=True)
            raise typer.Exit(2)
        env.sequence = 0  # the outbox numbers them
        out.append(env)
    return out
