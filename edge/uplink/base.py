"""What every uplink offers, the reconnect backoff they share and their errors."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from edge.errors import EdgeError


class UplinkError(EdgeError):
    """The uplink could not be configured or started."""


class Uplink(Protocol):
    """Drains the outbox to the cloud: sends in sequence order, deletes on acknowledgement."""

    def start(self) -> None:
        """Start sending in a background thread (returns at once)."""

    def notify(self) -> None:
        """Wake the sender: new envelopes are in the outbox."""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending and close the connection; unacknowledged entries stay in the outbox."""

    @property
    def connected(self) -> bool:
        """Whether the uplink has a working session to the cloud now."""


@dataclass
class UplinkStats:
    """Counters of one uplink since start."""

    sent: int = 0
    acked: int = 0  # PUBACKs (MQTT) or acks (gRPC)
    confirmed: int = 0  # MQTT cloud_ack: envelopes the cloud confirmed after its commit
    resent: int = 0  # MQTT cloud_ack: envelopes sent again for want of a confirmation
    rejected: int = 0
    connects: int = 0
    disconnects: int = 0


@dataclass
class Backoff:
    """Exponential reconnect delay with full jitter: uniform(0, min(max, initial * 2**n))."""

    initial_s: float = 1.0
    max_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; grows until `reset`."""
        cap = min(self.max_s, self.initial_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        # Never zero: a floor of a tenth of the initial delay stops a hot reconnect loop.
        return max(self.initial_s / 10.0, self.rng.uniform(0.0, cap))

    def reset(self) -> None:
        """A connection succeeded: start again from the initial delay."""
        self.attempt = 0
