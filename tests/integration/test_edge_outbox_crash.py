"""kill -9 of a process writing and acknowledging outbox entries: no corruption, no loss.

A child process stores envelopes as fast as it can, prints each sequence once `put` returned
(so it is committed), and acknowledges older ones in between. The parent kills it with SIGKILL
at different moments, reopens the file and checks it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.outbox import SqliteOutbox
from protos.mallpulse.v1 import telemetry_pb2

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from edge.outbox import SqliteOutbox
from protos.mallpulse.v1 import telemetry_pb2

outbox = SqliteOutbox(sys.argv[1], max_entries=int(sys.argv[2]))
acked = []
while True:
    env = telemetry_pb2.Envelope(device_id="d", camera_id="c")
    env.window.frames_processed = 1
    seq = outbox.put(env)
    print(f"put {seq}", flush=True)
    if seq % 7 == 0:
        batch = [e.sequence for e in outbox.peek(limit=3)]
        print("acking " + " ".join(map(str, batch)), flush=True)  # may or may not commit
        outbox.ack(batch)
        print("acked " + " ".join(map(str, batch)), flush=True)
"""


@pytest.mark.parametrize("kill_after_s", [0.05, 0.4, 0.9])
def test_sigkill_while_writing_keeps_every_committed_entry(
    tmp_path: Path, kill_after_s: float
) -> None:
    db = tmp_path / "outbox.db"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), "1000000"],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the child is up and writing; start the clock from here
    time.sleep(kill_after_s)
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)
    out = first + rest
    put: set[int] = set()
    acking: set[int] = set()  # deletions started (committed or not when the kill came)
    acked: set[int] = set()  # deletions known to be committed
    for line in out.decode().splitlines():
        kind, _, values = line.partition(" ")
        numbers = {int(x) for x in values.split()}
        {"put": put, "acking": acking, "acked": acked}[kind].update(numbers)
    assert put, "the child stored nothing before it was killed"

    outbox = SqliteOutbox(db)  # PRAGMA quick_check runs on open
    try:
        stored = {e.sequence for e in outbox.peek(limit=10**7)}
        stats = outbox.stats()
        # Every committed, unacknowledged entry is still there, its bytes intact.
        assert put - acking <= stored
        assert not stored & acked
        assert stats.last_sequence >= max(put)
        for entry in outbox.peek(limit=10**7):
            assert telemetry_pb2.Envelope.FromString(entry.payload).sequence == entry.sequence
        # Numbering continues after the crash; nothing is reused.
        assert (
            outbox.put(telemetry_pb2.Envelope(window=telemetry_pb2.WindowReport()))
            == stats.last_sequence + 1
        )
    finally:
        outbox.close()
