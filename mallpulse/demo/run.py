"""`mallpulse demo`: start every part of MallPulse on one machine and keep it running.

Order: backing services -> migrations -> demo store and gateway registered -> ingest, API and a
Celery worker with beat -> the edge agent replaying the rendered store video through the full
vision pipeline and the MQTT uplink -> the fleet simulator for more stores -> a seeded CRM.
Ctrl-C (SIGINT) or SIGTERM stops every child process and embedded service.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mallpulse.demo.scene import DEMO_DEVICE, DEMO_STORE, DEMO_TIMEZONE
from mallpulse.demo.services import DemoServices, free_port, port_open
from mallpulse.demo.supervisor import DemoError, Supervisor

STEPS = 8


@dataclass(frozen=True)
class DemoOptions:
    """What the user asked for on the command line."""

    data_dir: Path
    database_url: str | None
    mqtt: str | None
    celery_broker_url: str | None
    embedded: bool
    api_port: int
    video: Path | None
    stores: int
    customers: int
    window_s: int
    topic_prefix: str
    duration_s: float


def say(step: int, text: str) -> None:
    """Print one progress line."""
    print(f"[{step}/{STEPS}] {text}", flush=True)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as res:  # noqa: S310 - loopback URL we built
            return bool(res.status == 200)
    except OSError:
        return False


def child_env(
    opts: DemoOptions, services: DemoServices, *, jwt_secret: str, grpc: str
) -> dict[str, str]:
    """The environment every child process gets (Settings read MALLPULSE_*)."""
    env = dict(os.environ)
    env.update(
        MALLPULSE_DATABASE_URL=services.database_url,
        MALLPULSE_MQTT_HOST=services.mqtt_host,
        MALLPULSE_MQTT_PORT=str(services.mqtt_port),
        MALLPULSE_MQTT_TOPIC_PREFIX=opts.topic_prefix,
        MALLPULSE_CELERY_BROKER_URL=services.celery_broker_url,
        MALLPULSE_CELERY_FS_DIR=str(opts.data_dir / "celery"),
        MALLPULSE_JWT_SECRET=jwt_secret,
        MALLPULSE_GRPC_BIND=grpc,
        MALLPULSE_API_HOST="127.0.0.1",
        MALLPULSE_API_PORT=str(opts.api_port),
        MALLPULSE_API_PUBLIC_DOCS="true",  # a local demo: /docs open to whoever runs it
        MALLPULSE_RATELIMIT_STORAGE="memory",  # one API process, no Redis needed
        MALLPULSE_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    env.update(services.ingest_env())
    return env


def prepare_database(services: DemoServices) -> str:
    """Migrate and register the demo store and gateway; returns the gateway's MQTT password."""
    import psycopg

    from cloud.db.migrate import migrate
    from cloud.db.repositories.devices import create_device, create_store, get_store

    migrate(services.database_url)
    with psycopg.connect(services.database_url) as conn:
        if get_store(conn, DEMO_STORE) is None:
            create_store(conn, store_id=DEMO_STORE, name="Demo Store", timezone=DEMO_TIMEZONE)
        known = conn.execute("SELECT 1 FROM devices WHERE id = %s", (DEMO_DEVICE,)).fetchone()
        if known is None:
            create_device(conn, store_id=DEMO_STORE, device_id=DEMO_DEVICE, name="demo gateway")
    return DEMO_DEVICE


def detector_for(opts: DemoOptions) -> dict[str, object]:
    """Motion detector for the rendered scene (no weights); YOLOX for a real video."""
    if opts.video is None:
        return {"kind": "motion", "motion_gating": {"enabled": False}}
    from edge.config.files import manifests_dir

    manifest = manifests_dir() / "yolox_nano.yaml"
    return {"kind": "onnx", "manifest": str(manifest)}


def start_children(sup: Supervisor, opts: DemoOptions, edge_config: Path) -> None:
    """Start ingest, API, worker, edge agent and simulator, each after the previous is up."""
    api = f"http://127.0.0.1:{opts.api_port}"
    sup.start(
        "ingest", sup.python("-m", "mallpulse", "cloud", "ingest", "--instance", "demo-ingest")
    )
    sup.start(
        "api",
        sup.python("-m", "mallpulse", "cloud", "api", "--port", str(opts.api_port)),
        ready=lambda: _http_ok(f"{api}/readyz"),
        timeout_s=60,
    )
    sup.start(
        "worker",
        sup.python(
            "-m",
            "celery",
            "-A",
            "cloud.workers.app",
            "worker",
            "-B",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "-s",
            str(opts.data_dir / "celerybeat-schedule"),
        ),
    )
    sup.start("edge", sup.python("-m", "mallpulse", "edge", "run", "--config", str(edge_config)))
    sup.start(
        "simulator",
        sup.python(
            "-m",
            "mallpulse",
            "simulate",
            "--stores",
            str(opts.stores),
            "--devices-per-store",
            "2",
            "--rate",
            str(1 / opts.window_s),
            "--window-s",
            str(opts.window_s),
            "--prefix",
            "demo-sim",
        ),
    )


def seed_crm(services: DemoServices, customers: int, data_dir: Path) -> str:
    """Seed synthetic customers, transactions and loyalty activity through the CRM services,
    once per database (a marker file in the data folder remembers which were seeded)."""
    import psycopg

    from cloud.core.settings import Settings
    from cloud.crm.config import crm_config
    from cloud.crm.seed import seed_demo_crm

    marker = data_dir / "crm-seeded.json"
    seeded: list[str] = json.loads(marker.read_text()) if marker.exists() else []
    if services.database_url in seeded:
        return "CRM already seeded in this database"

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 5) == 0:
            print(f"      seeded {done}/{total} customers", flush=True)

    # the programme the demo's API earns by (MALLPULSE_CRM_LOYALTY_PROGRAM_FILE, if set)
    program = crm_config(Settings(database_url=services.database_url))[1]
    with psycopg.connect(services.database_url) as conn:
        summary = seed_demo_crm(
            conn,
            customers=customers,
            stores=[DEMO_STORE],
            program=program,
            rng_seed=7,
            progress=progress,
        )
    marker.write_text(json.dumps([*seeded, services.database_url]))
    return "CRM seeded: " + ", ".join(f"{v} {k}" for k, v in summary.items())


def print_access(opts: DemoOptions, jwt_secret: str, services: DemoServices) -> dict[str, str]:
    """Issue tokens and print where to look; returns the tokens by role."""
    from cloud.core.security import Role, issue_token
    from cloud.core.settings import Settings

    settings = Settings(database_url=services.database_url, jwt_secret=jwt_secret)
    tokens = {
        "store_manager": issue_token(
            settings,
            subject="manager@demo",
            role=Role.STORE_MANAGER,
            store_ids={DEMO_STORE},
            ttl_s=86400,
        ),
        "hq_marketer": issue_token(
            settings, subject="marketer@demo", role=Role.HQ_MARKETER, ttl_s=86400
        ),
        "admin": issue_token(settings, subject="admin@demo", role=Role.ADMIN, ttl_s=86400),
    }
    api = f"http://127.0.0.1:{opts.api_port}"
    (opts.data_dir / "access.json").write_text(json.dumps({"api": api, **tokens}, indent=2))
    print(
        f"""
MallPulse demo is running.
  Dashboard (store manager): {api}/dashboard#store={DEMO_STORE}&token={tokens["store_manager"]}
  API docs:                  {api}/docs
  Live footfall:             {api}/v1/stores/{DEMO_STORE}/footfall/live (bearer token)
  Marketer token (CRM):      {tokens["hq_marketer"]}
  Admin token:               {tokens["admin"]}
  Tokens and URLs are also in {opts.data_dir / "access.json"}; logs in {opts.data_dir / "logs"}.
Press Ctrl-C to stop everything.""",
        flush=True,
    )
    return tokens


def _wait(sup: Supervisor, stop: threading.Event, duration_s: float) -> int:
    """Block until stop, the duration ends, or a child dies (exit code 1 then)."""
    started = time.monotonic()
    while not stop.wait(1.0):
        dead = sup.dead()
        if dead:
            for child in dead:
                print(
                    f"\n{child.name} exited with code {child.process.returncode}; its log "
                    f"({child.log_path}) ends with:\n{child.tail()}",
                    file=sys.stderr,
                )
            return 1
        if duration_s and time.monotonic() - started >= duration_s:
            break
    return 0


def run_demo(opts: DemoOptions) -> int:
    """Run the whole system until Ctrl-C; returns the process exit code."""
    from mallpulse.demo.scene import render_store_video, write_edge_config
    from mallpulse.demo.services import resolve_services

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    say(1, "finding or starting PostgreSQL, an MQTT broker and the Celery transport")
    services = resolve_services(
        data_dir=opts.data_dir,
        database_url=opts.database_url,
        mqtt=opts.mqtt,
        celery_broker_url=opts.celery_broker_url,
        embedded=opts.embedded,
    )
    for line in services.descriptions:
        print(f"      {line}", flush=True)
    jwt_secret = secrets.token_hex(32)
    grpc = f"127.0.0.1:{free_port()}"
    sup = Supervisor(
        opts.data_dir / "logs", child_env(opts, services, jwt_secret=jwt_secret, grpc=grpc)
    )
    try:
        say(2, "applying migrations and registering the demo store and gateway")
        prepare_database(services)
        say(
            3,
            "rendering the synthetic store entrance video"
            if opts.video is None
            else f"using the video {opts.video}",
        )
        video, camera = render_store_video(opts.data_dir)
        if opts.video is not None:
            video = opts.video
        edge_config = write_edge_config(
            opts.data_dir,
            camera=camera,
            video=video,
            detector=detector_for(opts),
            mqtt_host=services.mqtt_host,
            mqtt_port=services.mqtt_port,
            topic_prefix=opts.topic_prefix,
            window_s=opts.window_s,
        )
        say(4, "starting ingest, API, Celery worker and beat, the edge agent and the simulator")
        start_children(sup, opts, edge_config)
        for child in sup.children:
            print(f"      started {child.name} pid {child.process.pid}", flush=True)
        say(5, "seeding the CRM with synthetic customers, transactions and loyalty activity")
        print(f"      {seed_crm(services, opts.customers, opts.data_dir)}", flush=True)
        say(6, "issuing demo tokens")
        print_access(opts, jwt_secret, services)
        say(7, "running")
        code = _wait(sup, stop, opts.duration_s)
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        say(8, "stopping every process")
        sup.stop_all()
        services.close()
        print("stopped.", flush=True)
    return code


def default_api_port() -> int:
    """8000 when free, else any free port."""
    return 8000 if not port_open("127.0.0.1", 8000) else free_port()
