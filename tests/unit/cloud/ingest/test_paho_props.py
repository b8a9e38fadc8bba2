"""Shared-table PUBLISH properties decode exactly what paho's own class decodes."""

from __future__ import annotations

import struct

from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.ingest import paho_props

V5 = MQTTProtocolVersion.MQTTv5


def _publish(props: Properties | None) -> bytes:
    head = struct.pack("!H", 3) + b"a/b" + struct.pack("!H", 7)
    return head + (props.pack() if props else b"\x00") + b"payload"  # type: ignore[no-untyped-call]


def _decode(props: Properties | None) -> tuple[bytes, int, str]:
    packet = _packet.decode_publish(0x32, _publish(props), V5)
    return bytes(packet.payload), packet.mid, str(packet.properties)


def test_decoded_messages_are_the_same_after_install() -> None:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = ("k", "v")
    props.ContentType = "application/x-protobuf"
    original = getattr(_packet, "Properties")  # noqa: B009
    before = [_decode(None), _decode(props)]
    try:
        assert paho_props.install() and paho_props.install()  # idempotent
        after = [_decode(None), _decode(props)]
        decoded = _packet.decode_publish(0x32, _publish(props), V5).properties
        assert isinstance(decoded, paho_props.SharedTableProperties)
    finally:
        setattr(_packet, "Properties", original)  # noqa: B010
    assert after == before
    assert "UserProperty : [('k', 'v')]" in after[1][2] and after[0][0] == b"payload"


def test_other_packet_types_keep_their_own_tables() -> None:
    connack = paho_props.SharedTableProperties(PacketTypes.CONNACK)
    setattr(connack, "ReceiveMaximum", 10)  # noqa: B010 - paho's dynamic attributes
    assert getattr(connack, "ReceiveMaximum") == 10  # noqa: B009
    assert connack.names is not paho_props.SharedTableProperties(PacketTypes.PUBLISH).names
