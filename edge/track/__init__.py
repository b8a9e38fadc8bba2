"""Multi-object tracking: the `Tracker` protocol, the `Track` type and a lean ByteTrack."""

from edge.track.bytetrack import ByteTracker, iou_matrix
from edge.track.types import Track, Tracker, TrackUpdate

__all__ = ["ByteTracker", "Track", "TrackUpdate", "Tracker", "iou_matrix"]
