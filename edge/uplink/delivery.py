"""End-to-end delivery over MQTT: which envelopes the cloud has confirmed, which to resend.

A broker's PUBACK only says the broker took the message; a broker restart, a shared
subscription with no member or a full queue can still drop it. So with `delivery: cloud_ack`
an envelope leaves the outbox only when the ingest names its sequence in a `DeliveryAck` on the
device's `ack` topic, which it publishes after its transaction committed. `Unconfirmed` keeps
the sequences sent and not yet confirmed (at most `limit`: sending pauses beyond it, which also
bounds the memory) and says which are due for a resend; each resend of an envelope doubles its
wait, up to `max_timeout_s`. Pure logic, the clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from protos.mallpulse.v1 import delivery_pb2

# A range in an acknowledgement longer than this is applied to the tracked sequences by
# looking each of them up, not by walking the range (a range may span a whole backlog).
_WALK_LIMIT = 4096


@dataclass(slots=True)
class _Sent:
    due_at: float
    attempts: int


class Unconfirmed:
    """Sequences sent and not yet confirmed by the cloud, with their resend deadlines."""

    def __init__(
        self,
        timeout_s: float,
        max_timeout_s: float,
        limit: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_timeout_s = max_timeout_s
        self.limit = limit
        self._clock = clock
        self._sent: dict[int, _Sent] = {}
        self._next_due = float("inf")  # no entry is due before this (a lower bound)
        self.last_confirmed_at = clock()

    def __len__(self) -> int:
        return len(self._sent)

    def __contains__(self, sequence: int) -> bool:
        return sequence in self._sent

    @property
    def room(self) -> int:
        """How many more envelopes may be sent before sending pauses."""
        return max(0, self.limit - len(self._sent))

    def sent(self, sequence: int) -> None:
        """`sequence` was just published (again): wait for its confirmation."""
        prev = self._sent.get(sequence)
        attempts = prev.attempts + 1 if prev else 1
        wait = min(self.max_timeout_s, self.timeout_s * 2 ** min(attempts - 1, 30))
        due = self._clock() + wait
        self._sent[sequence] = _Sent(due, attempts)
        self._next_due = min(self._next_due, due)

    def confirm(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Forget the sequences inside the inclusive ranges; returns how many were tracked."""
        gone = 0
        sent = self._sent
        for first, last in ranges:
            if last - first < min(_WALK_LIMIT, len(sent)):
                hits = [s for s in range(first, last + 1) if s in sent]
            else:
                hits = [s for s in sent if first <= s <= last]
            for s in hits:
                del sent[s]
            gone += len(hits)
        if gone:
            self.last_confirmed_at = self._clock()
        return gone

    def forget(self, sequences: Iterable[int]) -> None:
        """Stop tracking sequences that left the outbox otherwise (dropped by its bounds)."""
        for s in sequences:
            self._sent.pop(s, None)

    def due(self) -> list[int]:
        """The sequences whose confirmation is overdue, oldest first (resend them)."""
        now = self._clock()
        if now < self._next_due:
            return []
        out = [s for s, e in self._sent.items() if e.due_at <= now]
        self._next_due = min((e.due_at for e in self._sent.values() if e.due_at > now),
                             default=float("inf"))  # fmt: skip
        return sorted(out)

    def rearm(self, *, now_due: bool) -> None:
        """After a reconnect: resend everything at once (`now_due`, the broker lost the
        session), or give every entry a fresh base timeout (the outage was not its fault)."""
        now = self._clock()
        for entry in self._sent.values():
            entry.due_at = now if now_due else now + self.timeout_s
        self._next_due = now if now_due else (now + self.timeout_s if self._sent else float("inf"))

    def sequences(self) -> list[int]:
        """Every tracked sequence, oldest first."""
        return sorted(self._sent)


def ack_ranges(message: delivery_pb2.DeliveryAck) -> Iterator[tuple[int, int]]:
    """The well-formed (first, last) ranges of an acknowledgement."""
    for r in message.ranges:
        if 0 < r.first <= r.last:
            yield r.first, r.last
