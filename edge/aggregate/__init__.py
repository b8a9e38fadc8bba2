"""Window aggregation: wall-clock windows and the protobuf messages of the wire contract."""

from edge.aggregate.windows import WindowClock, envelope, window_report

__all__ = ["WindowClock", "envelope", "window_report"]
