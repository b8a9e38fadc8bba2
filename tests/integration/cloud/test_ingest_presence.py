"""Device presence: status timestamps are bounded like window timestamps, and a gRPC stream's
close never hides a newer stream of the same device."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from cloud.core.settings import Settings
from cloud.db.repositories.devices import create_device, create_store
from cloud.ingest.grpc_server import build_server
from cloud.ingest.service import IngestService
from cloud.ingest.status import apply_statuses
from cloud.ingest.validate import Incoming, Limits
from cloud.simulator.envelopes import status_message, window_envelope
from protos.mallpulse.v1 import ingest_pb2, ingest_pb2_grpc, telemetry_pb2


@pytest.fixture
def device(pg_pool: Any) -> dict[str, str]:
    """A store with one registered device and its credential."""
    tag = uuid.uuid4().hex[:8]
    ids = {"store": f"pr-{tag}", "dev": f"prd-{tag}"}
    with pg_pool.connection() as conn:
        create_store(conn, store_id=ids["store"], name="P", timezone="UTC")
        ids["cred"] = create_device(conn, store_id=ids["store"], device_id=ids["dev"])
    return ids


def _online(pg_pool: Any, dev: str) -> bool:
    with pg_pool.connection() as conn:
        row = conn.execute("SELECT online FROM devices WHERE id = %s", (dev,)).fetchone()
    assert row is not None
    return bool(row[0])


def _status(ids: dict[str, str], online: bool, at: datetime) -> Incoming:
    topic = f"p/{ids['store']}/{ids['dev']}/status"
    payload = status_message(store_id=ids["store"], device_id=ids["dev"], online=online, at=at)
    return Incoming(payload, "mqtt", 1, topic, ids["store"], ids["dev"], "status")


def test_a_status_from_the_future_is_dead_lettered_and_pins_nothing(
    pg_pool: Any, device: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    assert apply_statuses(pg_pool, [_status(device, True, datetime(2100, 1, 1, tzinfo=UTC))]) == 0
    with pg_pool.connection() as conn:
        row = conn.execute(
            "SELECT reason_code, reason FROM dead_letters WHERE device_id = %s", (device["dev"],)
        ).fetchone()
    assert row is not None and row[0] == "out_of_range" and "in the future" in row[1]
    assert not _online(pg_pool, device["dev"])
    # the real statuses still apply in order: online, then the last will's offline
    assert apply_statuses(pg_pool, [_status(device, True, now)]) == 1
    assert _online(pg_pool, device["dev"])
    assert apply_statuses(pg_pool, [_status(device, False, now + timedelta(seconds=1))]) == 1
    assert not _online(pg_pool, device["dev"])


def test_a_status_within_the_allowed_skew_is_applied(pg_pool: Any, device: dict[str, str]) -> None:
    ahead = datetime.now(UTC) + timedelta(seconds=60)
    assert apply_statuses(pg_pool, [_status(device, True, ahead)], limits=Limits()) == 1
    assert _online(pg_pool, device["dev"])
    tight = Limits(max_skew_s=10.0)
    later = ahead + timedelta(seconds=1)
    assert apply_statuses(pg_pool, [_status(device, False, later)], limits=tight) == 0
    assert _online(pg_pool, device["dev"])


@pytest.fixture
def grpc_stub(settings: Settings, pg_pool: Any) -> Iterator[ingest_pb2_grpc.TelemetryIngestStub]:
    """A stub of a real gRPC ingest server on a loopback port."""
    server, port = build_server(settings, IngestService(pg_pool, Limits()), bind="127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield ingest_pb2_grpc.TelemetryIngestStub(channel)
    channel.close()
    server.stop(grace=1.0).wait()


class _OpenStream:
    """A device stream kept open until `close()`: envelopes go in through a queue."""

    def __init__(self, stub: Any, ids: dict[str, str], first_sequence: int) -> None:
        self._inbox: queue.Queue[telemetry_pb2.Envelope | None] = queue.Queue()
        self._acks = stub.StreamEnvelopes(
            self._requests(), metadata=[("authorization", f"Bearer {ids['cred']}")]
        )
        end = datetime.now(UTC)
        self._inbox.put(window_envelope(
            store_id=ids["store"], device_id=ids["dev"], sequence=first_sequence,
            start=end - timedelta(minutes=1), end=end, lines={"door": (1, 0)},
        ))  # fmt: skip
        ack = next(self._acks)  # the server has opened the stream and stored the envelope
        assert ack.status == ingest_pb2.ACK_STATUS_ACCEPTED

    def _requests(self) -> Iterator[telemetry_pb2.Envelope]:
        while (env := self._inbox.get()) is not None:
            yield env

    def close(self) -> None:
        """Half-close and read the stream to its end (the server has run its cleanup then)."""
        self._inbox.put(None)
        assert list(self._acks) == []


def test_an_old_stream_closing_after_a_reconnect_leaves_the_device_online(
    grpc_stub: Any, pg_pool: Any, device: dict[str, str]
) -> None:
    old = _OpenStream(grpc_stub, device, 1)
    assert _online(pg_pool, device["dev"])
    new = _OpenStream(grpc_stub, device, 2)  # the device reconnected; the old stream lingers
    old.close()
    assert _online(pg_pool, device["dev"]), "the old stream's close hid the open one"
    new.close()
    assert not _online(pg_pool, device["dev"])
