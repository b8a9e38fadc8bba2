"""Delivery acknowledgements to MQTT devices: which of their sequences are final in the cloud.

After a batch commits, the MQTT ingest publishes one `DeliveryAck` per device of the batch on
`{prefix}/{store}/{device}/ack` (QoS 1, not retained). It names every sequence the batch handled
for good: stored, duplicate (stored earlier) or dead-lettered. Only then may the gateway delete
them from its outbox: the broker's PUBACK to the gateway promised nothing about delivery.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cloud.ingest.service import Outcome, Status
from cloud.ingest.validate import Incoming
from protos.mallpulse.v1 import delivery_pb2


def ranges(sequences: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges covering `sequences` (positive values only)."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(s for s in sequences if s > 0)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def delivery_ack(device_id: str, sequences: Iterable[int], rejected: Iterable[int] = ()) -> bytes:
    """A serialized DeliveryAck of one device."""
    msg = delivery_pb2.DeliveryAck(device_id=device_id, rejected=sorted(set(rejected)))
    for first, last in ranges(sequences):
        msg.ranges.add(first=first, last=last)
    return msg.SerializeToString()


def acks_by_topic(
    prefix: str, items: Sequence[Incoming], outcomes: Sequence[Outcome]
) -> dict[str, bytes]:
    """Ack topic -> DeliveryAck for every device (from the topic it published on) of a batch.

    An item whose sequence is unknown (its payload does not parse) cannot be named; its device
    sends it again after its timeout and it is dead-lettered again, until the outbox bounds drop it.
    """
    handled: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for item, outcome in zip(items, outcomes, strict=True):
        if not (item.store_id and item.device_id and outcome.sequence > 0):
            continue
        seqs, bad = handled.setdefault((item.store_id, item.device_id), ([], []))
        seqs.append(outcome.sequence)
        if outcome.status is Status.REJECTED:
            bad.append(outcome.sequence)
    base = prefix.rstrip("/")
    return {
        f"{base}/{store}/{device}/ack": delivery_ack(device, seqs, bad)
        for (store, device), (seqs, bad) in handled.items()
    }
