"""TLS on both uplinks: a private Mosquitto with mutual TLS and with TLS + password, and a
grpcio server with mutual TLS. Certificates come from the `openssl` command in a fixture."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from edge.config import DeviceIdentity, GrpcConfig, MqttConfig, TlsConfig
from edge.outbox import SqliteOutbox
from edge.uplink import Backoff
from edge.uplink.grpc import GrpcUplink
from edge.uplink.mqtt import MqttUplink
from protos.mallpulse.v1 import ingest_pb2, ingest_pb2_grpc, telemetry_pb2

pytestmark = pytest.mark.integration

IDENT = DeviceIdentity(device_id="gw-tls-1", store_id="store-tls")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("the openssl command is needed to make test certificates")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-days", "1", "-subj", f"/CN={name}", cwd=d)  # fmt: skip


def make_leaf(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext + "\n")
    openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", cwd=d)  # fmt: skip
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "1",
            "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_leaf(d, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    make_leaf(d, "client", "ca", "extendedKeyUsage=clientAuth")
    return d


@pytest.fixture(scope="module")
def tls_broker(pki: Path) -> Iterator[dict[str, int]]:
    """Mosquitto with a mutual-TLS listener and a TLS + password listener."""
    if not Path(MOSQUITTO).exists():
        pytest.fail(f"mosquitto binary not found at {MOSQUITTO}")
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.fail("mosquitto_passwd not found (package mosquitto)")
    subprocess.run([passwd, "-b", "-c", str(pki / "passwd"), "gw-tls-1", "s3cret"], check=True)
    ports = {"mtls": free_port(), "password": free_port()}
    tls = f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
    conf = pki / "mosquitto.conf"
    conf.write_text(
        f"per_listener_settings true\nuser {getpass.getuser()}\nlog_dest none\n"
        f"listener {ports['mtls']} 127.0.0.1\n{tls}require_certificate true\n"
        "use_identity_as_username true\nallow_anonymous false\n"
        f"listener {ports['password']} 127.0.0.1\n{tls}password_file {pki}/passwd\n"
        "allow_anonymous false\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        for port in ports.values():
            wait_until(partial(_listening, port), what=f"mosquitto TLS listener {port}")
        yield ports
    finally:
        proc.terminate()
        proc.wait(10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def filled_outbox(path: Path, n: int = 5) -> SqliteOutbox:
    outbox = SqliteOutbox(path)
    outbox.put_many(
        [
            telemetry_pb2.Envelope(camera_id="c", window=telemetry_pb2.WindowReport())
            for _ in range(n)
        ]
    )
    return outbox


def run_mqtt(outbox: SqliteOutbox, cfg: MqttConfig, *, expect_drain: bool) -> MqttUplink:
    backoff = Backoff(0.05, 0.3)
    # No cloud subscribes here (TLS is what is tested): the broker's PUBACK stands for delivery.
    cfg = cfg.model_copy(update={"delivery": "broker_ack"})
    uplink = MqttUplink(cfg, IDENT, outbox, backoff=backoff)
    uplink.start()
    try:
        if expect_drain:
            wait_until(lambda: outbox.stats().depth == 0, what="drain over TLS")
        else:  # refused: it must keep trying (with backoff), not give up or crash
            wait_until(lambda: backoff.attempt >= 3, what="refused connects retried")
    finally:
        uplink.stop()
    return uplink


def test_mqtt_mutual_tls(pki: Path, tls_broker: dict[str, int], tmp_path: Path) -> None:
    outbox = filled_outbox(tmp_path / "o.db")
    tls = TlsConfig(
        ca_file=pki / "ca.crt", cert_file=pki / "client.crt", key_file=pki / "client.key"
    )
    uplink = run_mqtt(outbox, MqttConfig(port=tls_broker["mtls"], tls=tls), expect_drain=True)
    outbox.close()
    assert uplink.stats.acked == 5


def test_mqtt_tls_with_password(pki: Path, tls_broker: dict[str, int], tmp_path: Path) -> None:
    outbox = filled_outbox(tmp_path / "o.db")
    cfg = MqttConfig(
        port=tls_broker["password"],
        tls=TlsConfig(ca_file=pki / "ca.crt"),
        username="gw-tls-1",
        password="s3cret",
    )
    uplink = run_mqtt(outbox, cfg, expect_drain=True)
    outbox.close()
    assert uplink.stats.acked == 5


# paho-mqtt 2.2 drops (does not close) the TLS socket when the handshake fails; CPython frees
# it at once, but the ResourceWarning it raises would fail the test under filterwarnings=error.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("case", ["wrong-password", "untrusted-server"])
def test_mqtt_refused_connection_keeps_everything(
    pki: Path, tls_broker: dict[str, int], tmp_path: Path, case: str
) -> None:
    outbox = filled_outbox(tmp_path / "o.db")
    ca = pki / ("other-ca.crt" if case == "untrusted-server" else "ca.crt")
    cfg = MqttConfig(
        port=tls_broker["password"],
        tls=TlsConfig(ca_file=ca),
        username="gw-tls-1",
        password="wrong" if case == "wrong-password" else "s3cret",
    )
    uplink = run_mqtt(outbox, cfg, expect_drain=False)
    assert uplink.stats.acked == 0 and not uplink.connected
    assert outbox.stats().depth == 5  # nothing lost, retried with backoff
    outbox.close()


class _Ingest(ingest_pb2_grpc.TelemetryIngestServicer):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def StreamEnvelopes(self, request_iterator: Any, context: Any) -> Iterator[ingest_pb2.Ack]:
        self.tokens.append(dict(context.invocation_metadata()).get("authorization", ""))
        for env in request_iterator:
            yield ingest_pb2.Ack(
                device_id=env.device_id,
                sequence=env.sequence,
                status=ingest_pb2.ACK_STATUS_ACCEPTED,
            )


def test_grpc_mutual_tls_with_token(pki: Path, tmp_path: Path) -> None:
    creds = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.crt").read_bytes())],
        root_certificates=(pki / "ca.crt").read_bytes(),
        require_client_auth=True,
    )
    servicer = _Ingest()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ingest_pb2_grpc.add_TelemetryIngestServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    outbox = filled_outbox(tmp_path / "o.db")
    tls = TlsConfig(
        ca_file=pki / "ca.crt", cert_file=pki / "client.crt", key_file=pki / "client.key"
    )
    cfg = GrpcConfig(target=f"127.0.0.1:{port}", tls=tls, token="device-secret")
    uplink = GrpcUplink(cfg, IDENT, outbox, backoff=Backoff(0.05, 0.3))
    uplink.start()
    try:
        wait_until(lambda: outbox.stats().depth == 0, what="drain over gRPC TLS")
    finally:
        uplink.stop()
        outbox.close()
        server.stop(None)
    assert servicer.tokens == ["Bearer device-secret"]
