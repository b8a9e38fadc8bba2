"""`mallpulse simulate`: a fleet of simulated store gateways for demos and load tests."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cloud.simulator.fleet import Fleet


def simulate(
    stores: int = typer.Option(2, min=1, help="Number of stores."),
    devices_per_store: int = typer.Option(2, min=1, help="Gateways per store."),
    rate: float = typer.Option(1 / 60, min=0.0, help="Windows per second per device."),
    duration: float = typer.Option(0.0, min=0.0, help="Seconds to run (0: until Ctrl-C)."),
    transport: str = typer.Option("mqtt", help="mqtt or grpc."),
    window_s: float = typer.Option(60.0, min=1.0, help="Length of each simulated window."),
    prefix: str = typer.Option("sim", help="Store id prefix (stores are <prefix>-001 ...)."),
    provision: bool = typer.Option(True, help="Register missing stores/devices in the database."),
    grpc_token: str | None = typer.Option(
        None, envvar="MALLPULSE_SIM_TOKEN", help="Admin JWT for the gRPC relay stream."
    ),
) -> None:
    """Publish realistic footfall aggregates (daily and weekly curves) over MQTT or gRPC."""
    import psycopg

    from cloud.cli import _settings
    from cloud.simulator.fleet import Fleet, FleetConfig
    from cloud.simulator.fleet import provision as provision_devices

    if transport not in ("mqtt", "grpc"):
        raise typer.BadParameter("transport must be mqtt or grpc", param_hint="--transport")
    settings = _settings()
    cfg = FleetConfig(
        stores=stores, devices_per_store=devices_per_store, rate=rate, window_s=window_s,
        transport="grpc" if transport == "grpc" else "mqtt", store_prefix=prefix,
        mqtt_host=settings.mqtt_host, mqtt_port=settings.mqtt_port,
        topic_prefix=settings.mqtt_topic_prefix, grpc_target=settings.grpc_bind,
        grpc_token=grpc_token,
    )  # fmt: skip
    fleet = Fleet(cfg)
    if provision:
        with psycopg.connect(settings.database_url) as conn:
            created = provision_devices(conn, fleet.devices)
        typer.echo(f"provisioned {created} new devices in {stores} stores")
    _run(fleet, duration)
    typer.echo(f"sent {fleet.stats.sent} envelopes, {fleet.stats.errors} errors")


def _run(fleet: Fleet, duration: float) -> None:
    """Publish until `duration` seconds passed (0: until Ctrl-C), reporting progress."""
    fleet.start()
    started = time.monotonic()
    try:
        while duration == 0 or time.monotonic() - started < duration:
            time.sleep(min(5.0, duration or 5.0))
            elapsed = time.monotonic() - started
            sent = fleet.stats.sent
            typer.echo(
                f"{elapsed:7.1f}s sent {sent} ({sent / elapsed:.1f}/s) errors {fleet.stats.errors}",
                err=True,
            )
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
