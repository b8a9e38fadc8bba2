"""Unconfirmed envelopes of the MQTT uplink: resend deadlines, doubling waits, the window."""

from __future__ import annotations

from edge.uplink.delivery import Unconfirmed, ack_ranges
from protos.mallpulse.v1 import delivery_pb2


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_only_unconfirmed_entries_fall_due_after_the_timeout() -> None:
    clock = Clock()
    u = Unconfirmed(10.0, 100.0, 50, clock=clock)
    for s in range(1, 11):
        u.sent(s)
    assert u.confirm([(4, 10)]) == 7
    clock.t += 9.9
    assert u.due() == []
    clock.t += 0.2
    assert u.due() == [1, 2, 3]
    assert u.due() == []  # asked again: nothing new is due until they are resent


def test_each_resend_doubles_the_wait_up_to_the_maximum() -> None:
    clock = Clock()
    u = Unconfirmed(10.0, 35.0, 50, clock=clock)
    u.sent(7)
    waits = []
    for _ in range(4):
        start = clock.t
        while not u.due():
            clock.t += 1.0
        waits.append(clock.t - start)
        u.sent(7)  # the uplink resends what is due
    assert waits == [10.0, 20.0, 35.0, 35.0]


def test_the_window_bounds_what_is_tracked() -> None:
    u = Unconfirmed(10.0, 10.0, 3, clock=Clock())
    for s in (1, 2, 3):
        u.sent(s)
    assert u.room == 0
    u.confirm([(2, 2)])
    assert (u.room, u.sequences()) == (1, [1, 3])
    u.forget([1])
    assert u.sequences() == [3]


def test_a_range_over_a_whole_backlog_is_applied_without_walking_it() -> None:
    u = Unconfirmed(10.0, 10.0, 10, clock=Clock())
    u.sent(5)
    u.sent(2**62)
    assert u.confirm([(1, 2**63 - 1)]) == 2
    assert len(u) == 0


def test_rearm_after_a_reconnect() -> None:
    clock = Clock()
    u = Unconfirmed(10.0, 100.0, 10, clock=clock)
    u.sent(1)
    clock.t += 9.0
    u.rearm(now_due=False)  # the outage was not the cloud's fault: a fresh base timeout
    clock.t += 9.0
    assert u.due() == []
    u.rearm(now_due=True)  # the broker lost the session: everything again, at once
    assert u.due() == [1]


def test_malformed_ranges_are_ignored() -> None:
    msg = delivery_pb2.DeliveryAck(device_id="d")
    msg.ranges.add(first=3, last=5)
    msg.ranges.add(first=0, last=2)
    msg.ranges.add(first=9, last=8)
    assert list(ack_ranges(msg)) == [(3, 5)]
