"""The TLS recipe in docs/operations.md yields certificates that verify for every broker name;
the broker and beat health checks tell a healthy process from a dead one."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
GUIDE = REPO / "docs" / "operations.md"
COMPOSE_FILE = REPO / "deploy" / "compose" / "docker-compose.yml"
BROKER_NAMES = ["mqtt.example-chain.com", "mosquitto", "mqtt.mallpulse.svc.cluster.local"]


def tls_recipe() -> str:
    """The shell block of the guide's 'TLS certificates' section, minus its mkdir/cd line."""
    section = GUIDE.read_text().split("## TLS certificates", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "no bash block in the TLS section of docs/operations.md"
    lines = block.group(1).splitlines()
    assert lines[0].startswith("mkdir -p deploy/compose/certs && cd deploy/compose/certs")
    return "\n".join(["set -euo pipefail", *lines[1:]])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA and broker certificate made by running the guide's recipe."""
    assert shutil.which("openssl"), "openssl is needed to run the TLS recipe"
    folder = tmp_path_factory.mktemp("certs")
    result = subprocess.run(
        ["bash", "-c", tls_recipe()], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "server.crt: OK" in result.stdout
    return folder


@pytest.fixture
def tls_server(certs: Path) -> Iterator[int]:
    """A TLS server on a loopback port presenting the recipe's broker certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.crt", certs / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


@pytest.mark.parametrize("name", BROKER_NAMES)
def test_broker_certificate_verifies_for_every_name_clients_use(
    certs: Path, tls_server: int, name: str
) -> None:
    client = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    with (
        socket.create_connection(("127.0.0.1", tls_server), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname=name) as tls,
    ):
        assert tls.recv(2) == b"ok"


def test_broker_certificate_is_refused_for_another_name(certs: Path, tls_server: int) -> None:
    client = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    with (
        socket.create_connection(("127.0.0.1", tls_server), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        client.wrap_socket(raw, server_hostname="mqtt.attacker.example")


def broker_healthcheck(port: int) -> list[str]:
    """The compose broker healthcheck, aimed at another port."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    kind, command = compose["services"]["mosquitto"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL" and ":22B3 " in command, command
    return ["sh", "-c", command.replace(":22B3 ", f":{port:04X} ")]


def test_broker_healthcheck_sees_a_listening_port_and_not_a_closed_one() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert subprocess.run(broker_healthcheck(port), timeout=10).returncode == 0
    assert subprocess.run(broker_healthcheck(port), timeout=10).returncode != 0


def beat_checks() -> list[str]:
    """The beat liveness commands of compose and Kubernetes."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    kind, from_compose = compose["services"]["beat"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    manifest = yaml.safe_load((REPO / "deploy" / "k8s" / "base" / "beat.yaml").read_text())
    probe = manifest["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"]
    assert probe["command"][:2] == ["sh", "-c"]
    return [from_compose, probe["command"][2]]


@pytest.mark.parametrize("check", beat_checks(), ids=["compose", "k8s"])
def test_beat_check_wants_a_recently_written_schedule(tmp_path: Path, check: str) -> None:
    assert "find /tmp " in check
    command = ["sh", "-c", check.replace("find /tmp ", f"find {tmp_path} ")]
    assert subprocess.run(command, timeout=10).returncode != 0, "no schedule file yet"
    schedule = tmp_path / "celerybeat-schedule.db"
    schedule.write_bytes(b"")
    assert subprocess.run(command, timeout=10).returncode == 0, "fresh schedule file"
    stale = schedule.stat().st_mtime - 11 * 60
    os.utime(schedule, (stale, stale))
    assert subprocess.run(command, timeout=10).returncode != 0, "beat stopped writing"
