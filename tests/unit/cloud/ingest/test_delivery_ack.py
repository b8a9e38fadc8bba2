"""Delivery acknowledgements: per device, merged ranges, rejected ones named."""

from __future__ import annotations

from cloud.ingest.delivery import acks_by_topic, ranges
from cloud.ingest.service import Outcome, Status
from cloud.ingest.validate import Incoming
from protos.mallpulse.v1 import delivery_pb2


def test_ranges_merge_runs_and_drop_unknown_sequences() -> None:
    assert ranges([5, 3, 4, 9, 0, 4, 11, 10]) == [(3, 5), (9, 11)]
    assert ranges([]) == []


def _item(store: str | None, device: str | None) -> Incoming:
    return Incoming(b"", "mqtt", 0, "t", store, device, "window")


def test_acks_go_to_the_topic_of_the_publishing_device() -> None:
    items = [_item("s1", "d1"), _item("s1", "d1"), _item("s2", "d2"), _item("s1", "d1"),
             _item(None, None), _item("s1", "d1")]  # fmt: skip
    outcomes = [
        Outcome(Status.ACCEPTED, "d1", 1),
        Outcome(Status.DUPLICATE, "d1", 2),
        Outcome(Status.ACCEPTED, "d2", 7),
        Outcome(Status.REJECTED, "d1", 3, "bad_payload: x"),
        Outcome(Status.ACCEPTED, "dx", 9),  # no topic: nobody to tell
        Outcome(Status.REJECTED, "d1", 0, "bad_protobuf: x"),  # sequence unknown
    ]
    acks = {
        topic: delivery_pb2.DeliveryAck.FromString(payload)
        for topic, payload in acks_by_topic("p/v1/", items, outcomes).items()
    }
    assert set(acks) == {"p/v1/s1/d1/ack", "p/v1/s2/d2/ack"}
    d1 = acks["p/v1/s1/d1/ack"]
    assert [(r.first, r.last) for r in d1.ranges] == [(1, 3)]
    assert list(d1.rejected) == [3]
    assert [(r.first, r.last) for r in acks["p/v1/s2/d2/ack"].ranges] == [(7, 7)]
