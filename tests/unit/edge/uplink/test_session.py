"""UplinkSession: the uplink thread and the outbox are released on every exit path."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edge.config import EdgeConfig
from edge.outbox import OutboxError
from edge.uplink.session import UplinkSession


def _uplink_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("uplink-grpc")]


def test_exit_stops_the_uplink_even_when_the_outbox_fails(tmp_path: Path) -> None:
    config = EdgeConfig.model_validate(
        {
            "device": {"device_id": "gw", "store_id": "st"},
            "cameras": [{"id": "c", "source": "a"}],
            # nothing listens on port 1: the uplink thread keeps retrying until stopped
            "uplink": {
                "transport": "grpc",
                "grpc": {"target": "127.0.0.1:1", "deadline_s": 0.2},
                "backoff_initial_s": 0.01,
                "backoff_max_s": 0.05,
            },
            "outbox": {"path": str(tmp_path / "outbox.db")},
        }
    )
    before = set(_uplink_threads())
    session = UplinkSession(config, drain_timeout_s=1.0)
    with pytest.raises(OutboxError, match="closed"), session:
        assert set(_uplink_threads()) - before, "the session started no uplink thread"
        session.outbox.close()  # the drain at exit now fails
    assert not set(_uplink_threads()) - before
