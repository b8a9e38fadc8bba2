"""Window envelopes as JSON lines for `edge replay`, and the totals of a replay.

protobuf's JSON mapping leaves out fields at their zero value and writes 64-bit integers as
strings; a replay's JSONL is read by people and scripts that sum columns, so every field is
written and integers stay integers (timestamps keep their RFC 3339 form).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from edge.config import CameraConfig

_INT64 = {
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
}  # fmt: skip


def _integers(desc: Descriptor | Any, data: dict[str, Any]) -> dict[str, Any]:
    """Turn the 64-bit integer strings of `data` (a dict of a `desc` message) into ints."""
    for fd in desc.fields:
        if fd.name not in data:
            continue
        value = data[fd.name]
        items = value if isinstance(value, list) else [value]
        if fd.type in _INT64:
            data[fd.name] = [int(v) for v in items] if isinstance(value, list) else int(value)
        elif fd.message_type is not None and not fd.message_type.full_name.startswith(
            "google.protobuf."
        ):
            for item in items:
                if isinstance(item, dict):
                    _integers(fd.message_type, item)
    return data


def envelope_dict(envelope: Message) -> dict[str, Any]:
    """The envelope as a JSON-ready dict: all fields, zeros included, integers as numbers."""
    data = MessageToDict(
        envelope, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _integers(envelope.DESCRIPTOR, data)


@dataclass
class Totals:
    """Counts summed over every window of a replay (each configured id starts at 0)."""

    line_in: Counter[str] = field(default_factory=Counter)
    line_out: Counter[str] = field(default_factory=Counter)
    zone_entries: Counter[str] = field(default_factory=Counter)
    queue_served: Counter[str] = field(default_factory=Counter)
    shelf_interactions: Counter[str] = field(default_factory=Counter)
    demographics: int = 0

    @classmethod
    def for_camera(cls, camera: CameraConfig) -> Totals:
        """Totals with every line, zone and shelf of `camera` at 0."""
        totals = cls()
        for line in camera.lines:
            totals.line_in[line.id] += 0
            totals.line_out[line.id] += 0
        for zone in camera.zones:
            totals.zone_entries[zone.id] += 0
        for shelf in camera.shelves:
            totals.shelf_interactions[shelf.id] += 0
        return totals

    def add(self, envelope: Any) -> None:
        """Add one closed window's counts."""
        window = envelope.window
        for line in window.lines:
            self.line_in[line.line_id] += line.in_count
            self.line_out[line.line_id] += line.out_count
        for zone in window.zones:
            self.zone_entries[zone.zone_id] += zone.entries
        for queue in window.queues:
            self.queue_served[queue.zone_id] += queue.served
        for shelf in window.shelves:
            self.shelf_interactions[shelf.shelf_id] += shelf.interactions
        self.demographics += sum(c.count for c in window.demographics.counts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready totals: overall in/out, then per line, zone, queue and shelf."""
        return {
            "in": sum(self.line_in.values()),
            "out": sum(self.line_out.values()),
            "lines": {k: {"in": self.line_in[k], "out": self.line_out[k]} for k in self.line_in},
            "zone_entries": dict(self.zone_entries),
            "queue_served": dict(self.queue_served),
            "shelf_interactions": dict(self.shelf_interactions),
            "demographic_counts": self.demographics,
        }
