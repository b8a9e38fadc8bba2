"""Unit tests of remote config decisions (pure: no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.config import EdgeConfig
from edge.remote_config import MAX_CONFIG_BYTES, RemoteConfig, load_saved, restart_sections


def doc(version: int, line_x: float = 0.5, **extra: Any) -> dict[str, Any]:
    return {
        "version": version,
        "device": {"device_id": "gw", "store_id": "st"},
        "cameras": [
            {
                "id": "c1",
                "source": "x",
                "lines": [{"id": "l", "points": [[line_x, 0], [line_x, 1]]}],
            }
        ],
        **extra,
    }


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, int]] = []
        self.fail = fail

    def __call__(self, old: EdgeConfig, new: EdgeConfig) -> list[str]:
        if self.fail:
            raise RuntimeError("camera gone")
        self.calls.append((old.version, new.version))
        return restart_sections(old, new)


def make(tmp_path: Path, apply: Recorder | None = None) -> tuple[RemoteConfig, Recorder]:
    rec = apply or Recorder()
    return RemoteConfig(
        EdgeConfig.model_validate(doc(1)), rec, state_path=tmp_path / "rc.json"
    ), rec


def test_valid_newer_config_is_applied_and_saved(tmp_path: Path) -> None:
    rc, rec = make(tmp_path)
    payload = json.dumps(doc(2, line_x=0.7)).encode()
    verdict = rc.handle(payload)
    assert verdict is not None and verdict.accepted and verdict.reason == ""
    assert rec.calls == [(1, 2)]
    assert rc.current.version == 2
    assert (tmp_path / "rc.json").read_bytes() == payload
    assert json.loads(verdict.to_json()) == {
        "version": 2,
        "accepted": True,
        "field": "",
        "reason": "",
    }


def test_same_payload_twice_is_answered_once(tmp_path: Path) -> None:
    rc, _ = make(tmp_path)
    payload = json.dumps(doc(2)).encode()
    first = rc.handle(payload)
    assert first is not None and first.accepted
    assert rc.handle(payload) is None
    assert rc.handle(b"") is None  # a cleared retained topic


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (doc(2, line_x=1.5), "cameras[0].lines[0].points[0][0]"),
        (doc(2, extra_key=1), "extra_key"),
        ({**doc(2), "device": {"device_id": "other", "store_id": "st"}}, "device"),
        (doc(1, line_x=0.2), "version"),
        (doc(2, outbox={"path": "/elsewhere/outbox.db"}), "outbox.path"),
        (doc(0, line_x=0.2), "version"),
    ],
    ids=["out-of-range", "unknown-key", "identity", "same-version", "outbox-moved", "older"],
)
def test_invalid_config_is_rejected_and_old_stays(
    tmp_path: Path, document: dict[str, Any], field: str
) -> None:
    rc, rec = make(tmp_path)
    verdict = rc.handle(json.dumps(document).encode())
    assert verdict is not None and not verdict.accepted
    assert verdict.field == field
    assert verdict.reason
    assert rc.current.version == 1 and rec.calls == []
    assert not (tmp_path / "rc.json").exists()


def test_identical_config_is_accepted_without_apply(tmp_path: Path) -> None:
    rc, rec = make(tmp_path)
    verdict = rc.handle(json.dumps(doc(1)).encode())
    assert verdict is not None and verdict.accepted and verdict.reason == "already active"
    assert rec.calls == []


def test_size_limit(tmp_path: Path) -> None:
    rc, _ = make(tmp_path)
    verdict = rc.handle(b" " * (MAX_CONFIG_BYTES + 1))
    assert verdict is not None and not verdict.accepted and "exceeds" in verdict.reason


def test_apply_failure_keeps_old_config(tmp_path: Path) -> None:
    rc, _ = make(tmp_path, Recorder(fail=True))
    verdict = rc.handle(json.dumps(doc(2)).encode())
    assert verdict is not None and not verdict.accepted and "camera gone" in verdict.reason
    assert rc.current.version == 1


def test_sections_needing_restart_are_named(tmp_path: Path) -> None:
    rc, _ = make(tmp_path)
    verdict = rc.handle(json.dumps(doc(2, window={"length_s": 30})).encode())
    assert verdict is not None and verdict.accepted
    assert verdict.reason == "restart needed for: window"


def test_load_saved_prefers_a_newer_saved_config(tmp_path: Path) -> None:
    local = EdgeConfig.model_validate(doc(1))
    state = tmp_path / "rc.json"
    assert load_saved(state, local) is local  # nothing saved
    state.write_text(json.dumps(doc(3)))
    assert load_saved(state, local).version == 3
    state.write_text("{broken")
    assert load_saved(state, local) is local
    state.write_text(json.dumps({**doc(5), "device": {"device_id": "x", "store_id": "st"}}))
    assert load_saved(state, local) is local
