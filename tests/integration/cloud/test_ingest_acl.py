"""Generated Mosquitto ACL and password file on a private broker: a device publishes only under
its own topics; the ingest user reads them all."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.db.repositories.devices import create_device, create_store

REPO = Path(__file__).resolve().parents[3]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def secured_broker(database_url: str, pg_pool: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two devices in two stores, the generated ACL/passwords, and a broker enforcing them."""
    if not Path(MOSQUITTO).exists():
        pytest.fail(f"mosquitto binary not found at {MOSQUITTO}; install the mosquitto package")
    tag = uuid.uuid4().hex[:8]
    ids: dict[str, Any] = {"s1": f"acl1-{tag}", "s2": f"acl2-{tag}"}
    with pg_pool.connection() as conn:
        for store in ("s1", "s2"):
            create_store(conn, store_id=ids[store], name=store, timezone="UTC")
        ids["d1"], ids["d2"] = f"acld1-{tag}", f"acld2-{tag}"
        ids["pw1"] = create_device(conn, store_id=ids["s1"], device_id=ids["d1"]).rpartition(".")[2]
        ids["pw2"] = create_device(conn, store_id=ids["s2"], device_id=ids["d2"]).rpartition(".")[2]
    env = {**os.environ, "MALLPULSE_DATABASE_URL": database_url,
           "MALLPULSE_MQTT_PASSWORD": "ingest-secret"}  # fmt: skip
    acl, passwd = tmp_path / "acl", tmp_path / "passwd"
    cmd = [sys.executable, "-m", "mallpulse", "cloud", "acl", "--out", str(acl), "--passwd",
           str(passwd)]  # fmt: skip
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "wrote" in out.stdout
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        f"acl_file {acl}\npersistence false\nuser {getpass.getuser()}\n"
    )
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or broker.poll() is not None:
                broker.kill()
                _, err = broker.communicate()
                pytest.fail(f"private mosquitto did not start: {err.decode()[-500:]}")
            time.sleep(0.05)
    ids["port"] = port
    yield ids
    broker.terminate()
    broker.wait(10)
    assert broker.stderr is not None
    broker.stderr.close()


def _client(port: int, user: str, password: str) -> tuple[mqtt.Client, Any]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    result: dict[str, Any] = {}
    c.on_connect = lambda _c, _u, _f, rc, _p: result.setdefault("rc", rc)
    c.connect("127.0.0.1", port)
    c.loop_start()
    deadline = time.monotonic() + 5
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.02)
    return c, result.get("rc")


def test_device_publishes_only_under_its_own_topic(secured_broker: dict[str, Any]) -> None:
    b = secured_broker
    received: list[str] = []
    ingest, rc = _client(b["port"], "mallpulse-ingest", "ingest-secret")
    assert rc is not None and not rc.is_failure
    ingest.on_message = lambda _c, _u, msg: received.append(msg.topic)
    ingest.subscribe("$share/ingest/mallpulse/v1/+/+/window", qos=1)  # as the ingest service
    time.sleep(0.3)
    dev1, rc = _client(b["port"], b["d1"], b["pw1"])
    assert rc is not None and not rc.is_failure
    own = f"mallpulse/v1/{b['s1']}/{b['d1']}/window"
    foreign = [
        f"mallpulse/v1/{b['s2']}/{b['d2']}/window",  # another device
        f"mallpulse/v1/{b['s2']}/{b['d1']}/window",  # itself, but under another store
        f"mallpulse/v1/{b['s1']}/{b['d1']}/config",  # its config is the cloud's to write
    ]
    for topic in [*foreign, own]:
        dev1.publish(topic, b"x", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while own not in received and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert received == [own]
    for c in (ingest, dev1):
        c.loop_stop()
        c.disconnect()


def test_wrong_password_is_refused(secured_broker: dict[str, Any]) -> None:
    b = secured_broker
    c, rc = _client(b["port"], b["d1"], b["pw2"])
    assert rc is not None and rc.is_failure
    c.loop_stop()


def test_a_device_reads_only_its_own_acknowledgements(secured_broker: dict[str, Any]) -> None:
    b = secured_broker
    own = f"mallpulse/v1/{b['s1']}/{b['d1']}/ack"
    other = f"mallpulse/v1/{b['s2']}/{b['d2']}/ack"
    got: dict[str, list[tuple[str, bytes]]] = {"d1": [], "d2": []}
    devs = {}
    for name in ("d1", "d2"):
        c, rc = _client(b["port"], b[name], b["pw" + name[1]])
        assert rc is not None and not rc.is_failure
        c.on_message = lambda _c, _u, msg, n=name: got[n].append((msg.topic, bytes(msg.payload)))
        devs[name] = c
    subscribed = {"n": 0}
    devs["d1"].on_subscribe = lambda *_: subscribed.__setitem__("n", subscribed["n"] + 1)
    devs["d1"].subscribe([(own, 1), (other, 1)])  # the broker grants, but delivers only what
    devs["d2"].subscribe(other, qos=1)  # the ACL allows
    deadline = time.monotonic() + 5
    while subscribed["n"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    devs["d1"].publish(other, b"forged", qos=1).wait_for_publish(5)  # may not ack for d2
    ingest, rc = _client(b["port"], "mallpulse-ingest", "ingest-secret")
    assert rc is not None and not rc.is_failure
    for topic in (own, other):
        ingest.publish(topic, b"ack", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while (not got["d1"] or not got["d2"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert got["d1"] == [(own, b"ack")]
    assert got["d2"] == [(other, b"ack")]  # the ingest's, not the forged one
    for c in (ingest, *devs.values()):
        c.loop_stop()
        c.disconnect()
