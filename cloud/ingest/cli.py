"""`mallpulse cloud ingest|device|acl`: run ingest, register devices, write broker ACLs."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cloud.core.settings import Settings


def _settings() -> Settings:
    from cloud.cli import _settings as load

    return load()


def ingest(
    instance: str = typer.Option(
        socket.gethostname(), help="Stable instance id: the MQTT client id (persistent session)."
    ),
    mqtt: bool = typer.Option(True, help="Run the MQTT shared-subscription subscriber."),
    grpc: bool = typer.Option(True, help="Run the gRPC ingest server (MALLPULSE_GRPC_BIND)."),
    grpc_workers: int = typer.Option(
        64, min=2, help="gRPC worker threads: each open device stream holds one."
    ),
) -> None:
    """Run the ingest service until interrupted (SIGINT/SIGTERM finish the batch in hand)."""
    from cloud.ingest.runner import run_ingest

    run_ingest(_settings(), instance=instance, mqtt=mqtt, grpc=grpc, grpc_workers=grpc_workers)


def device(
    store: str = typer.Option(..., help="Store id the device belongs to."),
    device_id: str = typer.Option(..., "--id", help="Device id (as in the device's config)."),
    name: str = typer.Option("", help="A label."),
) -> None:
    """Register a device and print its credential once (MQTT password / gRPC bearer token)."""
    import psycopg

    from cloud.core.errors import CloudError
    from cloud.db.repositories.devices import create_device

    try:
        with psycopg.connect(_settings().database_url) as conn:
            credential = create_device(conn, store_id=store, device_id=device_id, name=name)
    except CloudError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    secret = credential.rpartition(".")[2]
    typer.echo(f"credential (gRPC bearer): {credential}")
    typer.echo(f"mqtt username: {device_id}  mqtt password: {secret}")


def acl(
    out: Path = typer.Option(Path("deploy/mosquitto/acl"), help="ACL file to write."),
    passwd: Path | None = typer.Option(None, help="Also write a mosquitto password file here."),
    ingest_user: str = typer.Option("mallpulse-ingest", help="Broker user of the ingest service."),
    ingest_password: str | None = typer.Option(
        None, envvar="MALLPULSE_MQTT_PASSWORD", help="Ingest user's password (for --passwd)."
    ),
) -> None:
    """Write the Mosquitto ACL (each device may publish only under its own topic)."""
    import psycopg

    from cloud.db.repositories.devices import acl_entries, mosquitto_hash
    from cloud.ingest.acl import render_acl, render_passwords

    settings = _settings()
    with psycopg.connect(settings.database_url) as conn:
        entries = acl_entries(conn)
    out.write_text(
        render_acl(entries, prefix=settings.mqtt_topic_prefix, ingest_user=ingest_user),
        encoding="utf-8",
    )
    if passwd is not None:
        digest = mosquitto_hash(ingest_password) if ingest_password else None
        passwd.write_text(
            render_passwords(entries, ingest_user=ingest_user, ingest_hash=digest),
            encoding="utf-8",
        )
        passwd.chmod(0o600)
    typer.echo(f"wrote {out} for {len(entries)} devices")


def register(app: typer.Typer) -> None:
    """Add the ingest commands to the `cloud` group."""
    app.command()(ingest)
    app.command()(device)
    app.command()(acl)
