"""No frame, face, crop or embedding can leave a gateway: every message kind the edge sends is
walked field by field, so a new field that could carry one fails here until it is reviewed.

What the edge sends: Envelope (MQTT telemetry and the gRPC stream; payloads `window` and
`health`), DeviceStatus (retained presence), ConfigStatus (gRPC) and the config-status JSON
document (MQTT). Image data would need a `bytes` field, a long `string`, or a repeated
float/double (an embedding); counts are integers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from edge.remote_config import ConfigVerdict
from protos.mallpulse.v1 import config_pb2, telemetry_pb2

SENT_BY_THE_EDGE = [
    telemetry_pb2.Envelope.DESCRIPTOR,
    telemetry_pb2.DeviceStatus.DESCRIPTOR,
    config_pb2.ConfigStatus.DESCRIPTOR,
]

# Every string field that may leave the device, and why it is not personal data.
ALLOWED_STRINGS = {
    "mallpulse.v1.Envelope.device_id": "the gateway's id",
    "mallpulse.v1.Envelope.store_id": "the store's id",
    "mallpulse.v1.Envelope.camera_id": "the camera's id from the config",
    "mallpulse.v1.LineCrossings.line_id": "a configured line's id",
    "mallpulse.v1.ZoneOccupancy.zone_id": "a configured zone's id",
    "mallpulse.v1.QueueStats.zone_id": "the configured zone the queue is in",
    "mallpulse.v1.ShelfInteractions.shelf_id": "a configured shelf's id",
    "mallpulse.v1.EmotionCount.zone_id": "a configured zone's id (empty: outside every zone)",
    "mallpulse.v1.CameraHealth.camera_id": "the camera's id",
    "mallpulse.v1.ModelVersion.name": "a model's name",
    "mallpulse.v1.ModelVersion.sha256": "a model file's digest",
    "mallpulse.v1.DeviceHealth.software_version": "the agent's version",
    "mallpulse.v1.DeviceStatus.device_id": "the gateway's id",
    "mallpulse.v1.DeviceStatus.store_id": "the store's id",
    "mallpulse.v1.DeviceStatus.software_version": "the agent's version",
    "mallpulse.v1.ConfigStatus.device_id": "the gateway's id",
    "mallpulse.v1.ConfigStatus.field": "the config field that was rejected",
    "mallpulse.v1.ConfigStatus.reason": "why the config was rejected",
}
# Repeated floating-point fields (the shape of an embedding), and why they are not one.
ALLOWED_FLOAT_LISTS = {
    "mallpulse.v1.DwellHistogram.upper_bounds_s": "configured histogram bucket bounds",
}


def _fields(desc: Descriptor, seen: set[str]) -> Iterator[FieldDescriptor]:
    if desc.full_name in seen:
        return
    seen.add(desc.full_name)
    for field in desc.fields:
        yield field
        if field.message_type is not None:
            yield from _fields(field.message_type, seen)


def _all_fields() -> list[FieldDescriptor]:
    seen: set[str] = set()
    return [f for d in SENT_BY_THE_EDGE for f in _fields(d, seen)]


def test_no_bytes_field_is_sent() -> None:
    found = [f.full_name for f in _all_fields() if f.type == FieldDescriptor.TYPE_BYTES]
    assert found == [], f"bytes fields could carry a frame or face crop: {found}"


def test_every_string_sent_is_reviewed() -> None:
    strings = {f.full_name for f in _all_fields() if f.type == FieldDescriptor.TYPE_STRING}
    unreviewed = strings - ALLOWED_STRINGS.keys()
    assert ALLOWED_STRINGS.keys() <= strings, "remove stale entries from ALLOWED_STRINGS"
    assert not unreviewed, (
        f"add each to ALLOWED_STRINGS with the reason it is not personal data: {unreviewed}"
    )


def test_no_embedding_shaped_field_is_sent() -> None:
    floats = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)
    lists = {f.full_name for f in _all_fields() if f.type in floats and f.is_repeated}
    assert lists <= ALLOWED_FLOAT_LISTS.keys(), lists - ALLOWED_FLOAT_LISTS.keys()


@pytest.mark.parametrize("name", ["DemographicCount", "Demographics", "EmotionCount"])
def test_demographics_are_counts_by_band_and_gender(name: str) -> None:
    desc = telemetry_pb2.DESCRIPTOR.message_types_by_name[name]
    kinds = {f.name: f.type for f in desc.fields}
    if name == "Demographics":
        assert kinds == {"counts": FieldDescriptor.TYPE_MESSAGE}
    elif name == "EmotionCount":  # a zone id, a valence and a count: no face, no score
        assert kinds == {
            "zone_id": FieldDescriptor.TYPE_STRING,
            "valence": FieldDescriptor.TYPE_ENUM,
            "count": FieldDescriptor.TYPE_UINT32,
        }
    else:
        assert set(kinds.values()) <= {FieldDescriptor.TYPE_ENUM, FieldDescriptor.TYPE_UINT32}


def test_the_mqtt_config_status_document_holds_only_the_verdict() -> None:
    verdict = ConfigVerdict(version=3, accepted=False, field="cameras.0.lines", reason="empty")
    assert set(json.loads(verdict.to_json())) == {"version", "accepted", "field", "reason"}
