"""Pure analytics on tracks and timestamps: lines, zones, queues, shelves, demographics."""

from edge.analytics.camera import CameraAnalytics, CameraWindow
from edge.analytics.lines import LineCounter
from edge.analytics.presence import Presence, Visit
from edge.analytics.shelves import ShelfCounter
from edge.analytics.types import FrameTracks, Histogram
from edge.analytics.zones import QueueEstimator, ZoneCounter

__all__ = [
    "CameraAnalytics",
    "CameraWindow",
    "FrameTracks",
    "Histogram",
    "LineCounter",
    "Presence",
    "QueueEstimator",
    "ShelfCounter",
    "Visit",
    "ZoneCounter",
]
