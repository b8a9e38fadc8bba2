"""A cheaper MQTT 5 PUBLISH-properties object for paho's receive path.

paho-mqtt 2.x builds a fresh `Properties` for every received MQTT 5 PUBLISH, and its
constructor rebuilds three lookup tables (about 30 dict entries and 30 `list.index` calls) each
time; at a few thousand messages per second that is a fifth of the ingest process's CPU
(profiled with py-spy, docs/benchmarks.md). `install()` makes paho's packet decoder use a
subclass that shares one copy of those read-only tables and skips the decoding loop when a
message carries no properties (the usual case). Everything else, including messages that do
carry properties, goes through paho's own code, so the decoded messages are the same.
"""

from __future__ import annotations

from typing import Any

from paho.mqtt import _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_TABLES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]


class SharedTableProperties(Properties):
    """`Properties` whose lookup tables are shared by every instance (they are never mutated)."""

    def __init__(self, packetType: int) -> None:  # noqa: N803 - paho's parameter name
        if packetType != PacketTypes.PUBLISH:
            super().__init__(packetType)  # type: ignore[no-untyped-call]
            return
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", _TABLES.types)
        object.__setattr__(self, "names", _TABLES.names)
        object.__setattr__(self, "properties", _TABLES.properties)

    def unpack(self, buffer: Any) -> tuple[Properties, int]:
        """Decode the properties at the start of `buffer`; (self, bytes used)."""
        if buffer and buffer[0] == 0:  # property length 0: nothing to decode or clear
            return self, 1
        result: tuple[Properties, int] = super().unpack(buffer)  # type: ignore[no-untyped-call]
        return result


def install() -> bool:
    """Make paho's packet decoder build `SharedTableProperties`; False (and nothing changed)
    when this paho does not have the expected layout."""
    current = getattr(_packet, "Properties", None)
    if current is SharedTableProperties:
        return True
    if current is not Properties:
        return False
    setattr(_packet, "Properties", SharedTableProperties)  # noqa: B010 - a private name
    return True
